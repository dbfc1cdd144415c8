"""Initial schema: job, job_step, asset.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _ts(name: str, nullable: bool = True) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "job",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("sku", sa.String(64), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("theme", sa.String(64), nullable=False),
        sa.Column("source_url", sa.Text(), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("flow_run_id", sa.String(64)),
        sa.Column("error", sa.Text()),
        sa.Column("error_step", sa.String(32)),
        sa.Column("error_type", sa.String(128)),
        sa.Column("manifest_key", sa.Text()),
        sa.Column("cost_usd", sa.Float(), nullable=False),
        _ts("created_at", nullable=False),
        _ts("started_at"),
        _ts("finished_at"),
        _ts("updated_at", nullable=False),
        sa.UniqueConstraint("sku", "sha256", "theme", name="uq_job_sku_sha256_theme"),
    )
    op.create_index("ix_job_sku", "job", ["sku"])
    op.create_index("ix_job_status_created", "job", ["status", "created_at"])
    op.create_table(
        "job_step",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("job_id", sa.Uuid(), sa.ForeignKey("job.id", ondelete="CASCADE"), nullable=False),
        sa.Column("step", sa.String(32), nullable=False),
        sa.Column("variant", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        _ts("started_at"),
        _ts("finished_at"),
        sa.Column("duration_ms", sa.Float()),
        sa.Column("cost_usd", sa.Float(), nullable=False),
        sa.Column("provider", sa.String(64)),
        sa.Column("error", sa.Text()),
        sa.Column("details", sa.Text()),
        sa.UniqueConstraint("job_id", "step", "variant", name="uq_step_job_variant"),
    )
    op.create_index("ix_job_step_job_id", "job_step", ["job_id"])
    op.create_table(
        "asset",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("job_id", sa.Uuid(), sa.ForeignKey("job.id", ondelete="CASCADE"), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("variant", sa.Integer()),
        sa.Column("size", sa.String(16)),
        sa.Column("format", sa.String(16)),
        sa.Column("width", sa.Integer()),
        sa.Column("height", sa.Integer()),
        sa.Column("bytes", sa.Integer(), nullable=False),
        sa.Column("content_type", sa.String(64), nullable=False),
        sa.Column("sha256", sa.String(64)),
        _ts("created_at", nullable=False),
        sa.UniqueConstraint("job_id", "key", name="uq_asset_job_key"),
    )
    op.create_index("ix_asset_job_id", "asset", ["job_id"])


def downgrade() -> None:
    op.drop_table("asset")
    op.drop_table("job_step")
    op.drop_table("job")

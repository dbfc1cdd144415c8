"""Outbound events: the outbox table, one row per event and target.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def _ts(name: str, nullable: bool = True) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "outbox_event",
        # An INTEGER PRIMARY KEY is SQLite's autoincrementing rowid; BIGSERIAL on PostgreSQL.
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("job_id", sa.Uuid(), sa.ForeignKey("job.id", ondelete="CASCADE"), nullable=False),
        sa.Column("target_url", sa.Text(), nullable=False),
        sa.Column("type", sa.String(32), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        _ts("created_at", nullable=False),
        _ts("retry_since", nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        _ts("next_attempt_at", nullable=False),
        _ts("last_attempt_at"),
        sa.Column("last_status", sa.Integer()),
        sa.Column("last_error", sa.Text()),
        _ts("delivered_at"),
        sa.UniqueConstraint("event_id", "target_url", name="uq_outbox_event_target"),
    )
    op.create_index("ix_outbox_state_next", "outbox_event", ["state", "next_attempt_at"])
    op.create_index("ix_outbox_job_target", "outbox_event", ["job_id", "target_url", "id"])


def downgrade() -> None:
    op.drop_index("ix_outbox_job_target", table_name="outbox_event")
    op.drop_index("ix_outbox_state_next", table_name="outbox_event")
    op.drop_table("outbox_event")

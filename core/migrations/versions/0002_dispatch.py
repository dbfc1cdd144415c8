"""Webhook outbox: jobs waiting for the dispatcher to create their flow run.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "job",
        sa.Column("dispatch_pending", sa.Boolean(), nullable=False, server_default=sa.false()),
    )
    op.add_column(
        "job", sa.Column("dispatch_attempts", sa.Integer(), nullable=False, server_default="0")
    )
    op.add_column("job", sa.Column("dispatch_error", sa.Text()))
    op.add_column("job", sa.Column("dispatch_next_at", sa.DateTime(timezone=True)))
    op.add_column("job", sa.Column("dispatched_at", sa.DateTime(timezone=True)))
    op.create_index("ix_job_dispatch_pending", "job", ["dispatch_pending", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_job_dispatch_pending", table_name="job")
    with op.batch_alter_table("job") as batch:  # SQLite cannot drop columns in place
        for name in (
            "dispatched_at",
            "dispatch_next_at",
            "dispatch_error",
            "dispatch_attempts",
            "dispatch_pending",
        ):
            batch.drop_column(name)

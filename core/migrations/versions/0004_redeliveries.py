"""Redeliveries: how many times a delivery of a FAILED job queued a new attempt.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "job", sa.Column("redeliveries", sa.Integer(), nullable=False, server_default="0")
    )


def downgrade() -> None:
    with op.batch_alter_table("job") as batch:  # SQLite cannot drop columns in place
        batch.drop_column("redeliveries")

"""Quality and review: the job's quality object and the decision on a held job.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_COLUMNS = ("quality", "review_decision", "review_by", "review_at", "review_reason")


def upgrade() -> None:
    op.add_column("job", sa.Column("quality", sa.Text(), nullable=True))
    op.add_column("job", sa.Column("review_decision", sa.String(16), nullable=True))
    op.add_column("job", sa.Column("review_by", sa.String(128), nullable=True))
    op.add_column("job", sa.Column("review_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("job", sa.Column("review_reason", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("job") as batch:  # SQLite cannot drop columns in place
        for name in _COLUMNS:
            batch.drop_column(name)

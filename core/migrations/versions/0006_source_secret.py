"""Source secrets: the job's source URL shown redacted, the whole URL sealed beside it.

Rows written before this revision kept the whole URL in ``source_url``. Each one whose URL
carries credentials or query values is split the way ``core.sealed.seal_source`` splits new
ones: encrypted when ``PACKSHOT_SECRET_KEY`` is set while migrating, as written otherwise.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from core.sealed import open_source, seal_source
from core.settings import get_settings

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_job = sa.table(
    "job",
    sa.column("id", sa.Uuid()),
    sa.column("source_url", sa.Text()),
    sa.column("source_secret", sa.Text()),
)


def upgrade() -> None:
    op.add_column("job", sa.Column("source_secret", sa.Text(), nullable=True))
    key = get_settings().secret_key
    bind = op.get_bind()
    for job_id, url in bind.execute(sa.select(_job.c.id, _job.c.source_url)).all():
        sealed = seal_source(url, key)
        if sealed.secret is not None:
            bind.execute(
                _job.update()
                .where(_job.c.id == job_id)
                .values(source_url=sealed.shown, source_secret=sealed.secret)
            )


def downgrade() -> None:
    key = get_settings().secret_key
    bind = op.get_bind()
    rows = bind.execute(
        sa.select(_job.c.id, _job.c.source_url, _job.c.source_secret).where(
            _job.c.source_secret.is_not(None)
        )
    ).all()
    for job_id, shown, secret in rows:
        url = open_source(shown, secret, key)
        bind.execute(_job.update().where(_job.c.id == job_id).values(source_url=url))
    with op.batch_alter_table("job") as batch:  # SQLite cannot drop columns in place
        batch.drop_column("source_secret")

"""Alembic environment: migrates the connection handed over by ``core.db.upgrade_schema``."""

from __future__ import annotations

from alembic import context
from sqlmodel import SQLModel

import core.events.table
import core.tables  # noqa: F401  (registers the tables, the outbox too, on SQLModel.metadata)

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=SQLModel.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()

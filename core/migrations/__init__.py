"""Versioned schema migrations (Alembic); run by ``core.db.upgrade_schema``."""

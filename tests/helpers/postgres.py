"""A throwaway PostgreSQL database on the machine's server (skipped with a reason when absent)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

ADMIN_URL = os.environ.get(
    "PACKSHOT_TEST_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres"
)


def _connect(url: str) -> object:
    import psycopg

    return psycopg.connect(url, autocommit=True, connect_timeout=3)


@contextmanager
def temporary_database() -> Iterator[str]:
    """Create a fresh database, yield its SQLAlchemy URL, drop it afterwards."""
    try:
        admin = _connect(ADMIN_URL)
    except Exception as exc:  # noqa: BLE001  (any connection failure means: no server here)
        pytest.skip(f"PostgreSQL not reachable at {ADMIN_URL}: {type(exc).__name__}")
    name = f"packshot_test_{uuid.uuid4().hex[:10]}"
    with admin:  # type: ignore[attr-defined]
        admin.execute(f'CREATE DATABASE "{name}"')  # type: ignore[attr-defined]
        base = ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
        try:
            yield f"{base}/{name}"
        finally:
            from core.db import reset_engines

            reset_engines()
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')  # type: ignore[attr-defined]

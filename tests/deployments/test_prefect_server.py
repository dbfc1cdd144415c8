"""The Prefect servers Packshot starts begin every SQLite transaction IMMEDIATE.

Two transactions on Prefect's own SQLite configuration: the first reads, another connection
writes and commits, then the first writes. Begun DEFERRED (Prefect's default) the first fails at
once with "database is locked", which the server answers 503 and the client waits 2 s on;
begun IMMEDIATE, the other write waits for the first to commit and both succeed.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from prefect.server.database.configurations import AioSqliteConfiguration
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from deployments.prefect_server import immediate_sqlite_transactions


async def _collide(database: Path) -> str | None:
    """Read, let another connection write, then write: None, or the error of the first."""
    config = AioSqliteConfiguration(connection_url=f"sqlite+aiosqlite:///{database}")
    engine = await config.engine()
    async with engine.begin() as connection:
        await connection.exec_driver_sql("CREATE TABLE IF NOT EXISTS t (n INTEGER)")

    async def other_write() -> None:
        async with config.begin_transaction(await config.session(engine)) as transaction:
            await transaction.session.execute(text("INSERT INTO t VALUES (2)"))

    first = await config.session(engine)
    try:
        async with config.begin_transaction(first):
            await first.execute(text("SELECT count(*) FROM t"))
            other = asyncio.create_task(other_write())
            await asyncio.sleep(0.3)  # it commits now unless it waits for this transaction
            await first.execute(text("INSERT INTO t VALUES (1)"))
        await other
    except OperationalError as exc:
        return str(exc.orig)
    finally:
        await engine.dispose()
    return None


@pytest.fixture
def restored(monkeypatch: pytest.MonkeyPatch) -> None:
    """Prefect's own ``begin_transaction`` is put back after the test."""
    original = AioSqliteConfiguration.begin_transaction
    monkeypatch.setattr(AioSqliteConfiguration, "begin_transaction", original)


@pytest.mark.usefixtures("restored")
def test_a_read_then_write_transaction_waits_instead_of_failing(tmp_path: Path) -> None:
    assert asyncio.run(_collide(tmp_path / "deferred.db")) == "database is locked"

    immediate_sqlite_transactions()
    immediate_sqlite_transactions()  # a second call changes nothing

    assert asyncio.run(_collide(tmp_path / "immediate.db")) is None

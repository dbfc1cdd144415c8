"""The Prefect servers Packshot starts begin every SQLite transaction IMMEDIATE.

Two transactions on Prefect's own SQLite configuration: the first reads, another connection
writes and commits, then the first writes. Begun DEFERRED (Prefect's default) the first fails at
once with "database is locked", which the server answers 503 and the client waits 2 s on;
begun IMMEDIATE, the other write waits for the first to commit and both succeed.
"""

from __future__ import annotations

import asyncio
import gc
from pathlib import Path

import pytest
from prefect.server.database.configurations import AioSqliteConfiguration
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from deployments.prefect_server import immediate_sqlite_transactions, main


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


@pytest.mark.usefixtures("restored")
def test_serve_runs_prefects_app_under_uvicorn_with_the_servers_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import uvicorn
    from prefect.server.api import server
    from prefect.settings import (
        PREFECT_SERVER_API_KEEPALIVE_TIMEOUT,
        PREFECT_SERVER_LOGGING_LEVEL,
        temporary_settings,
    )

    app = object()
    created: list[dict[str, object]] = []
    served: list[dict[str, object]] = []

    def create_app(**kwargs: object) -> object:
        created.append({**kwargs, "collecting": gc.isenabled()})
        return app

    def run(**kwargs: object) -> None:
        served.append({**kwargs, "collecting": gc.isenabled(), "frozen": gc.get_freeze_count()})

    monkeypatch.setattr(server, "create_app", create_app)
    monkeypatch.setattr(uvicorn, "run", run)
    updates = {PREFECT_SERVER_API_KEEPALIVE_TIMEOUT: 7, PREFECT_SERVER_LOGGING_LEVEL: "DEBUG"}
    with temporary_settings(updates=updates):
        main(["--host", "127.0.0.1", "--port", "4321"])

    assert created == [{"final": True, "collecting": False}]  # built without collections
    assert served[0]["app"] is app
    assert served[0]["collecting"] and served[0]["frozen"]  # serving with them, start-up frozen
    assert (served[0]["host"], served[0]["port"]) == ("127.0.0.1", 4321)
    assert (served[0]["timeout_keep_alive"], served[0]["log_level"]) == (7, "debug")
    assert getattr(AioSqliteConfiguration.begin_transaction, "_packshot_immediate", False)


def test_the_server_command_names_a_missing_port() -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--host", "127.0.0.1"])
    assert exited.value.code == 2

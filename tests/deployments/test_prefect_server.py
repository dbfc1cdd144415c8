"""The Prefect servers Packshot starts begin every SQLite transaction IMMEDIATE.

Two transactions on Prefect's own SQLite configuration: the first reads, another connection
writes and commits, then the first writes. Begun DEFERRED (Prefect's default) the first fails at
once with "database is locked", which the server answers 503 and the client waits 2 s on;
begun IMMEDIATE, the other write waits for the first to commit and both succeed.
"""

from __future__ import annotations

import asyncio
import gc
import time
from pathlib import Path

import pytest
from prefect.server.database.configurations import AioSqliteConfiguration
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from deployments.prefect_server import immediate_sqlite_transactions, main, serve


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


@pytest.fixture
def fake_uvicorn(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, object]]:
    """Prefect's app stands in as a plain object, and uvicorn's server records what it was
    given instead of serving; it "serves" until told to stop, or 5 s (port 1: fails to start)."""
    import uvicorn
    from prefect.server.api import server

    served: list[dict[str, object]] = []

    def create_app(**kwargs: object) -> object:
        served.append({"create_app": kwargs, "collecting": gc.isenabled()})
        return _APP

    def run(self: uvicorn.Server, sockets: object = None) -> None:
        config = self.config
        served.append(
            {
                "app": config.app,
                "host": config.host,
                "port": config.port,
                "keep_alive": config.timeout_keep_alive,
                "log_level": config.log_level,
                "collecting": gc.isenabled(),
                "frozen": gc.get_freeze_count() > 0,
            }
        )
        self.started = config.port != 1  # port 1: the start fails, as a taken port would
        if not self.started:
            return  # uvicorn returns at once, having logged why
        deadline = time.monotonic() + 5
        while not self.should_exit and time.monotonic() < deadline:
            time.sleep(0.05)
        served.append({"stopped": self.should_exit})

    monkeypatch.setattr(server, "create_app", create_app)
    monkeypatch.setattr(uvicorn.Server, "run", run)
    return served


_APP = object()


@pytest.mark.usefixtures("restored")
def test_serve_runs_prefects_app_under_uvicorn_with_the_servers_settings(
    fake_uvicorn: list[dict[str, object]],
) -> None:
    from prefect.settings import (
        PREFECT_SERVER_API_KEEPALIVE_TIMEOUT,
        PREFECT_SERVER_LOGGING_LEVEL,
        temporary_settings,
    )

    updates = {PREFECT_SERVER_API_KEEPALIVE_TIMEOUT: 7, PREFECT_SERVER_LOGGING_LEVEL: "DEBUG"}
    answers = iter([None, "unused for 901 s"])
    with temporary_settings(updates=updates):
        serve("127.0.0.1", 4321, stop_when=lambda: next(answers))

    built, serving, stopped = fake_uvicorn
    assert built == {"create_app": {"final": True}, "collecting": False}  # no collections
    assert serving["app"] is _APP and (serving["host"], serving["port"]) == ("127.0.0.1", 4321)
    assert (serving["keep_alive"], serving["log_level"]) == (7, "debug")
    assert serving["collecting"] and serving["frozen"]  # serving with them, start-up frozen
    assert stopped == {"stopped": True}  # the second answer gave a reason: it stopped
    assert getattr(AioSqliteConfiguration.begin_transaction, "_packshot_immediate", False)


@pytest.mark.usefixtures("restored")
def test_a_server_that_cannot_start_exits_3(fake_uvicorn: list[dict[str, object]]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--host", "127.0.0.1", "--port", "1"])
    assert exited.value.code == 3
    assert fake_uvicorn[-1]["port"] == 1  # it got as far as uvicorn


def test_the_server_command_names_a_missing_port() -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--host", "127.0.0.1"])
    assert exited.value.code == 2

"""The Prefect servers Packshot starts: Prefect's API server, with SQLite transactions that wait.

    python -m deployments.prefect_server --host 127.0.0.1 --port 4200

serves what ``prefect server start --host 127.0.0.1 --port 4200`` serves (API, UI and
background services as Prefect's settings in the environment say), with three differences:

* It does not load Prefect's command line. That import, its settings and logging set-up and
  the welcome banner were about 0.2 s of every start, on the critical path of a first
  ``packshot process`` (the command waits for this server).
* No automatic garbage collection until the app is built (``core.heap``): about 0.4 s less.
* On SQLite, every transaction begins ``IMMEDIATE``. Prefect 3.8.8 begins most SQLite
  transactions ``DEFERRED``. One that reads first and writes after fails at once with
  "database is locked" when another connection wrote in between (``SQLITE_BUSY_SNAPSHOT``:
  the busy timeout does not wait that out). The server answers such a request 503, and
  Prefect's client tries again after 2 s (then 4 s, …). Under a burst this hit a flow run's
  start and the creation of a photo's subflow: with ``PREFECT_API_LOG_RETRYABLE_ERRORS`` on,
  one 12-photo burst of ``benchmarks/throughput.py`` logged two, and held one batch run 4 s.
  Begun ``IMMEDIATE``, a transaction takes the write lock first, waiting for it up to the busy
  timeout (60 s) instead of failing. Prefect already begins its state changes that way
  (``with_for_update``), and its ``setup_sqlite`` names this as the remedy. Reads outside a
  transaction are not affected (the database is in WAL mode); PostgreSQL is not affected.
"""

from __future__ import annotations

import argparse
import logging
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from core.heap import end_startup, pause_collections

__all__ = ["immediate_sqlite_transactions", "main", "serve", "server_argv"]

log = logging.getLogger("packshot.prefect_server")
_MARK = "_packshot_immediate"
# How long a stop asked for by ``stop_when`` waits for open connections before it is forced.
_GRACE_S = 30.0


def immediate_sqlite_transactions() -> None:
    """Make Prefect's SQLite configuration begin every transaction ``IMMEDIATE`` (idempotent)."""
    from prefect.server.database.configurations import AioSqliteConfiguration

    original = AioSqliteConfiguration.begin_transaction
    if getattr(original, _MARK, False):
        return

    @asynccontextmanager
    async def begin_transaction(
        self: AioSqliteConfiguration, session: Any, with_for_update: bool = False
    ) -> AsyncIterator[Any]:
        async with original(self, session, with_for_update=True) as transaction:
            yield transaction

    setattr(begin_transaction, _MARK, True)
    AioSqliteConfiguration.begin_transaction = begin_transaction  # type: ignore[method-assign]


def server_argv(host: str, port: int) -> list[str]:
    """The command that runs a Prefect server on ``host:port`` (see the module's doc)."""
    return [sys.executable, "-m", "deployments.prefect_server", "--host", host, "--port", str(port)]


def serve(host: str, port: int, *, stop_when: Callable[[], str | None] | None = None) -> None:
    """Serve Prefect's API on ``host:port`` until SIGINT or SIGTERM (uvicorn stops gracefully).

    What ``prefect server start`` runs for one web worker: ``create_app`` with Prefect's
    settings from the environment, and uvicorn with the server's keep-alive, websocket ping and
    log level settings. ``stop_when``, asked every second from a thread, ends it the same way
    when it returns a reason (logged).

    Raises:
        SystemExit: 3 (uvicorn's start-up failure), e.g. when the port is taken.
    """
    pause_collections()  # until the app is built: see core.heap
    immediate_sqlite_transactions()
    import uvicorn
    from prefect.server.api.server import create_app
    from prefect.settings import get_current_settings

    settings = get_current_settings().server
    app = create_app(final=True)  # collects once itself, when built
    end_startup()
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        timeout_keep_alive=settings.api.keepalive_timeout,
        ws_ping_interval=settings.api.websocket_ping_interval,
        ws_ping_timeout=settings.api.websocket_ping_timeout,
        log_level=settings.logging_level.lower(),
    )
    server = uvicorn.Server(config)
    if stop_when is not None:
        threading.Thread(target=_watch, args=(server, stop_when), daemon=True).start()
    server.run()
    if not server.started:
        raise SystemExit(3)  # as uvicorn.run: it logged why


def _watch(server: Any, stop_when: Callable[[], str | None]) -> None:
    """Ask ``stop_when`` every second; tell uvicorn to stop once it gives a reason, and to stop
    without waiting for open connections and tasks if that has not ended it in 30 s."""
    while not server.should_exit:
        reason = stop_when()
        if reason is not None:
            log.info("stopping the Prefect server: %s", reason)
            server.should_exit = True
            time.sleep(_GRACE_S)
            server.force_exit = True  # as a second Ctrl-C would
            return
        time.sleep(1.0)


def main(argv: list[str] | None = None) -> None:
    """``python -m deployments.prefect_server --host HOST --port PORT``."""
    parser = argparse.ArgumentParser(prog="python -m deployments.prefect_server")
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", required=True, type=int)
    args = parser.parse_args(argv)
    serve(args.host, args.port)


if __name__ == "__main__":
    main()

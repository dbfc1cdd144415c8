"""Prefect's command line for the servers Packshot starts, with SQLite transactions that wait.

    python -m deployments.prefect_server server start --host 127.0.0.1 --port 4200

is ``prefect server start …`` (any ``prefect`` arguments), with one change to a server on
SQLite: every transaction begins ``IMMEDIATE``.

Prefect 3.8.8 begins most SQLite transactions ``DEFERRED``. One that reads first and writes
after fails at once with "database is locked" when another connection wrote in between
(``SQLITE_BUSY_SNAPSHOT``: the busy timeout does not wait that out). The server answers such a
request 503, and Prefect's client tries again after 2 s (then 4 s, …). Under a burst this hit a
flow run's start and the creation of a photo's subflow: with ``PREFECT_API_LOG_RETRYABLE_ERRORS``
on, one 12-photo burst of ``benchmarks/throughput.py`` logged two, and held one batch run 4 s.
Begun ``IMMEDIATE``, a transaction takes the write lock first, waiting for it up to the busy
timeout (60 s) instead of failing. Prefect already begins its state changes that way
(``with_for_update``), and its ``setup_sqlite`` names this as the remedy. Reads outside a
transaction are not affected (the database is in WAL mode); PostgreSQL is not affected.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

__all__ = ["PREFECT_CLI", "immediate_sqlite_transactions", "main"]

# The command that stands for `prefect` when Packshot starts a server.
PREFECT_CLI = (sys.executable, "-m", "deployments.prefect_server")
_MARK = "_packshot_immediate"


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


def main() -> None:
    """Run Prefect's command line with the change above."""
    immediate_sqlite_transactions()
    from prefect.cli import app

    sys.argv[0] = "prefect"
    app()  # exits with the command's code


if __name__ == "__main__":
    main()

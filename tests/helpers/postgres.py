"""A throwaway PostgreSQL database on the machine's server (skipped with a reason when absent),
and outages of one such database that look like a server restart to its clients.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

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


def database_name(database: str) -> str:
    """The database name of a URL (``postgresql+psycopg://…/name``), or ``database`` itself."""
    if "://" not in database:
        return database
    from sqlalchemy.engine import make_url

    name = make_url(database).database
    if not name:
        raise ValueError("the URL names no database")
    return name


@dataclass
class Outage:
    """What one outage did; times are ``time.monotonic()``."""

    database: str
    started_at: float | None = None
    ended_at: float | None = None
    terminated: int = 0


@contextmanager
def outage(database: str, seconds: float = 0.0) -> Iterator[Outage]:
    """``database`` (a name or a URL) goes down as in a server restart, for the block.

    New connections are refused and every open session is terminated (its client sees SQLSTATE
    57P01, "terminating connection due to administrator command"). Connections are allowed
    again when the block ends, but not before ``seconds`` have passed since it began, so
    ``with outage(url, 3): pass`` is a three-second outage. Only this database is affected:
    the shared server never restarts. Usable from any thread.
    """
    record = Outage(database_name(database))
    with _down(record, seconds):
        yield record


@contextmanager
def _down(record: Outage, seconds: float) -> Iterator[None]:
    name = record.database
    if '"' in name or "'" in name:
        raise ValueError(f"unexpected database name {name!r}")
    with _connect(ADMIN_URL) as admin:  # type: ignore[attr-defined]
        admin.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS false')
        try:
            # The timeout makes each call wait until its backend has exited, so by the time
            # ``started_at`` is set no session of the database is left.
            rows = admin.execute(
                "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity"
                " WHERE datname = %s AND pid <> pg_backend_pid()",
                (name,),
            ).fetchall()
            record.terminated = sum(1 for (ended,) in rows if ended)
            record.started_at = time.monotonic()
            yield
            time.sleep(max(0.0, record.started_at + seconds - time.monotonic()))
        finally:
            admin.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS true')
            record.ended_at = time.monotonic()


@dataclass
class BackgroundOutage:
    """An outage running in a daemon thread; ``join()`` waits for it and re-raises its error."""

    outage: Outage
    thread: threading.Thread
    errors: list[BaseException] = field(default_factory=list)

    def join(self, timeout: float = 60.0) -> Outage:
        """Wait until connections are allowed again; the outage's record."""
        self.thread.join(timeout)
        if self.thread.is_alive():
            raise TimeoutError(f"the outage of {self.outage.database} did not end in {timeout} s")
        if self.errors:
            raise self.errors[0]
        return self.outage


def start_outage(
    database: str,
    seconds: float,
    *,
    when: Callable[[], bool] | None = None,
    wait_s: float = 60.0,
) -> BackgroundOutage:
    """``outage(database, seconds)`` in a daemon thread; returns at once.

    With ``when``, the outage begins once ``when()`` is true (polled every 20 ms for at most
    ``wait_s`` seconds; then it begins anyway, and the test's own checks tell it was too late).
    ``background.outage`` fills in as it goes: ``started_at`` is set once the sessions are
    terminated, ``ended_at`` once connections are allowed again.
    """
    background = BackgroundOutage(Outage(database_name(database)), threading.Thread())

    def run() -> None:
        try:
            deadline = time.monotonic() + wait_s
            while when is not None and not when() and time.monotonic() < deadline:
                time.sleep(0.02)
            with _down(background.outage, seconds):
                pass
        except BaseException as exc:  # noqa: BLE001  (handed to the test by join())
            background.errors.append(exc)

    background.thread = threading.Thread(target=run, name="outage", daemon=True)
    background.thread.start()
    return background


def scalar(database_url: str, sql: str) -> object:
    """The first column of the first row of ``sql`` on the database at ``database_url``.

    A connection of its own (psycopg, autocommit), outside the engines under test.
    """
    with _connect(database_url.replace("+psycopg", "", 1)) as conn:  # type: ignore[attr-defined]
        row = conn.execute(sql).fetchone()
    return None if row is None else row[0]

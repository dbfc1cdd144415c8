"""A throwaway PostgreSQL database on the machine's server, and outages of one such database
that look like a server restart to its clients.

Every test that needs PostgreSQL reaches it through :func:`admin_connection`: the server is
``PACKSHOT_TEST_PG_URL`` (default ``postgresql://postgres@127.0.0.1:5432/postgres``). When it
cannot be reached, for any reason (no server, a password it wants, no driver installed), the test
is skipped with the real cause, or fails with it when ``PACKSHOT_REQUIRE_PG=1`` (CI sets it).
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, NoReturn

import pytest

URL_VARIABLE = "PACKSHOT_TEST_PG_URL"
REQUIRE_VARIABLE = "PACKSHOT_REQUIRE_PG"
DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
# Test-harness settings, not Packshot's: the autouse fixture that clears PACKSHOT_* keeps them.
TEST_VARIABLES = (URL_VARIABLE, REQUIRE_VARIABLE)


def admin_url() -> str:
    """The server tests make their databases on (a libpq URL to its maintenance database)."""
    return os.environ.get(URL_VARIABLE) or DEFAULT_URL


def admin_connection() -> Any:
    """An autocommit psycopg connection to :func:`admin_url`; skips or fails with the cause."""
    url = admin_url()
    try:
        return _connect(url)
    except Exception as exc:  # noqa: BLE001  (whatever the cause, it is reported, never hidden)
        cause = exc
    unavailable(url, cause)  # outside the handler: the report is the cause, not a chain of two


def unavailable(url: str, exc: BaseException) -> NoReturn:
    """Skip the test naming why PostgreSQL at ``url`` is out of reach; fail if it is required."""
    from sqlalchemy.engine import make_url

    cause = " ".join(str(exc).split()) or "(no message)"
    where = make_url(url).render_as_string(hide_password=True)
    reason = f"PostgreSQL unavailable at {where}: {type(exc).__name__}: {cause}"
    if os.environ.get(REQUIRE_VARIABLE) == "1":
        pytest.fail(f"{reason} ({REQUIRE_VARIABLE}=1)", pytrace=False)
    pytest.skip(f"{reason} (set {REQUIRE_VARIABLE}=1 to fail instead)")


def _connect(url: str) -> Any:
    import psycopg

    return psycopg.connect(url, autocommit=True, connect_timeout=3)


@contextmanager
def temporary_database() -> Iterator[str]:
    """Create a fresh database, yield its SQLAlchemy URL, drop it afterwards."""
    from sqlalchemy.engine import make_url

    admin = admin_connection()
    name = f"packshot_test_{uuid.uuid4().hex[:10]}"
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        url = make_url(admin_url()).set(drivername="postgresql+psycopg", database=name)
        try:
            yield url.render_as_string(hide_password=False)
        finally:
            from core.db import reset_engines

            reset_engines()
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


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
def _down(
    record: Outage, seconds: float, until: Callable[[], bool] | None = None, max_s: float = 60.0
) -> Iterator[None]:
    name = record.database
    if '"' in name or "'" in name:
        raise ValueError(f"unexpected database name {name!r}")
    with admin_connection() as admin:
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
            # Held on until the code under test has met the outage: on a loaded machine the
            # work that touches the database may come later than ``seconds``.
            while (
                until is not None and not until() and time.monotonic() < record.started_at + max_s
            ):
                time.sleep(0.05)
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
    until: Callable[[], bool] | None = None,
) -> BackgroundOutage:
    """``outage(database, seconds)`` in a daemon thread; returns at once.

    With ``when``, the outage begins once ``when()`` is true (polled every 20 ms for at most
    ``wait_s`` seconds; then it begins anyway, and the test's own checks tell it was too late).
    With ``until``, the outage lasts at least ``seconds`` and then until ``until()`` is true
    (at most 60 s). ``background.outage`` fills in as it goes: ``started_at`` is set once the sessions are
    terminated, ``ended_at`` once connections are allowed again.
    """
    background = BackgroundOutage(Outage(database_name(database)), threading.Thread())

    def run() -> None:
        try:
            deadline = time.monotonic() + wait_s
            while when is not None and not when() and time.monotonic() < deadline:
                time.sleep(0.02)
            with _down(background.outage, seconds, until):
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
    with _connect(database_url.replace("+psycopg", "", 1)) as conn:
        row = conn.execute(sql).fetchone()
    return None if row is None else row[0]

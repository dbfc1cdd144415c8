"""Database engine, sessions and the versioned schema upgrade (SQLite in WAL mode or Postgres)."""

from __future__ import annotations

import fcntl
import functools
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.pool import ConnectionPoolEntry
from sqlmodel import Session, create_engine

from core.backoff import backoff_s
from core.db_errors import is_transient_db_error
from core.errors import ConfigurationError
from core.events.record import install as install_outbox
from core.settings import get_settings

__all__ = [
    "begin_write",
    "get_engine",
    "is_transient_db_error",
    "reset_engines",
    "retrying",
    "session_scope",
    "sqlite_file",
    "upgrade_schema",
]

T = TypeVar("T")
log = logging.getLogger("packshot.db")

_MIGRATIONS = Path(__file__).with_name("migrations")
_engines: dict[str, Engine] = {}
_upgraded: set[str] = set()
_lock = threading.Lock()
# Any constant works: it only has to be the same in every process that migrates.
_PG_ADVISORY_KEY = 0x5041434B
# A server that does not answer at all (host gone, packets dropped) must not hold a retry
# loop past its deadline: libpq waits forever by default.
_PG_CONNECT_TIMEOUT_S = 10
_RETRY_FIRST_S = 0.5
_RETRY_MAX_S = 5.0
_BUSY_TIMEOUT_MS = 30_000
# begin_write's pauses between tries for SQLite's write lock: the first, and the longest.
_WRITE_POLL_FIRST_S = 0.0005
_WRITE_POLL_MAX_S = 0.002


def _sqlite_pragmas(dbapi_connection: object, _record: ConnectionPoolEntry) -> None:
    # WAL lets the dashboard read while a worker writes; busy_timeout makes concurrent
    # writers (mapped tasks, webhook, dispatcher) wait instead of failing at once.
    cursor = dbapi_connection.cursor()  # type: ignore[attr-defined]
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def sqlite_file(url: str | URL) -> str | None:
    """The database file a SQLite URL names; None for an in-memory or another database."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return str(parsed.database)


def _new_engine(url: str) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if (database := sqlite_file(parsed)) is not None:
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if parsed.get_backend_name() == "postgresql":
        # pre_ping: a connection the server terminated (restart, failover) is replaced at
        # checkout instead of failing the first statement of the next transaction.
        connect_args = (
            {} if "connect_timeout" in parsed.query else {"connect_timeout": _PG_CONNECT_TIMEOUT_S}
        )
        return create_engine(
            url, pool_pre_ping=True, pool_size=5, max_overflow=5, connect_args=connect_args
        )
    raise ConfigurationError(
        f"unsupported database {parsed.get_backend_name()!r}: use sqlite:/// or postgresql+psycopg://"
    )


def get_engine(url: str) -> Engine:
    """The process-wide engine for ``url``, created on first use (never at import time).

    Sessions then write the event outbox with every status change (``core.events.record``).
    """
    install_outbox()
    with _lock:
        engine = _engines.get(url)
        if engine is None:
            engine = _engines[url] = _new_engine(url)
        return engine


def reset_engines() -> None:
    """Dispose every engine (tests, and forked processes that must not share sockets)."""
    with _lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()
        _upgraded.clear()


@contextmanager
def session_scope(url: str) -> Iterator[Session]:
    """A session that commits on success and rolls back on error."""
    with Session(get_engine(url), expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


def begin_write(session: Session, *, patience_s: float = _BUSY_TIMEOUT_MS / 1000) -> None:
    """Begin ``session``'s transaction holding SQLite's write lock, as soon as it is free.

    For a writer that must not wait longer than another process holds the lock (the webhook):
    SQLite's own busy handler sleeps 1, 2, 5, 10, 15, 20, 25 ms … between tries, so a lock
    held 3 ms costs a waiter 8 ms and one held 9 ms costs 18 ms. Here ``BEGIN IMMEDIATE`` is
    tried every 0.5–2 ms instead, for up to ``patience_s``; then the busy error is raised as
    SQLAlchemy's ``OperationalError`` (transient, like any other busy error). Call it first
    in the session: a transaction already begun is left as it is. PostgreSQL locks rows, not
    the database: nothing to do there.
    """
    connection = session.connection()
    if connection.dialect.name != "sqlite":
        return
    raw = connection.connection.dbapi_connection
    if not isinstance(raw, sqlite3.Connection) or raw.in_transaction:
        return
    raw.execute("PRAGMA busy_timeout=0")  # busy: fail at once, the loop below waits
    try:
        _begin_immediate(raw, time.monotonic() + patience_s)
    finally:
        raw.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")


def _begin_immediate(raw: sqlite3.Connection, deadline: float) -> None:
    pause = _WRITE_POLL_FIRST_S
    while True:
        try:
            raw.execute("BEGIN IMMEDIATE")
            return
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode & 0xFF != sqlite3.SQLITE_BUSY or time.monotonic() > deadline:
                raise OperationalError("BEGIN IMMEDIATE", None, exc) from None
        time.sleep(pause)
        pause = min(pause * 2, _WRITE_POLL_MAX_S)


def _reason(exc: BaseException) -> str:
    """The driver's own first line: never SQLAlchemy's statement and parameters, nor the URL."""
    cause = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    lines = str(cause).strip().splitlines()
    return f"{type(cause).__name__}: {lines[0] if lines else ''}"[:200]


def retrying(work: Callable[[], T], *, what: str, patience_s: float | None = None) -> T:
    """``work()``, called again while it fails with a transient database error.

    Waits 0.5 s, then twice as long each time up to 5 s, and re-raises the last error once
    ``patience_s`` (default: the ``db_retry_s`` setting) have passed; any other error is raised
    at once. ``work`` must open its own session, so that every attempt is one whole
    transaction. It gets a fresh connection: SQLAlchemy invalidates a connection the server
    terminated, and the PostgreSQL pool pings each connection at checkout. Every retry logs a
    WARNING on ``packshot.db`` naming ``what`` and the driver's message (never the URL).
    """
    patience = get_settings().db_retry_s if patience_s is None else patience_s
    deadline = time.monotonic() + patience
    attempt = 1
    while True:
        try:
            return work()
        except Exception as exc:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not is_transient_db_error(exc):
                raise
            pause = min(
                backoff_s(attempt, first=_RETRY_FIRST_S, cap=_RETRY_MAX_S, jitter=0), remaining
            )
            log.warning(
                "database unavailable during %s (%s); retry %d in %.1f s",
                what,
                _reason(exc),
                attempt,
                pause,
            )
        time.sleep(pause)
        attempt += 1


@functools.cache
def _head_revision() -> str | None:
    # Once per process: alembic reads and compiles every migration script to find the head
    # (~5 ms of CPU holding the GIL), and each step's database write asks for it.
    return ScriptDirectory(str(_MIGRATIONS)).get_current_head()


@contextmanager
def _migration_lock(engine: Engine) -> Iterator[None]:
    """Serialise migrations across processes: file lock on SQLite, advisory lock on Postgres."""
    if engine.dialect.name == "sqlite":
        database = sqlite_file(engine.url)
        if database is None:
            yield
            return
        with Path(f"{database}.migrate.lock").open("w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
        return
    with engine.connect() as conn:
        conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _PG_ADVISORY_KEY})
        try:
            yield
        finally:
            conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _PG_ADVISORY_KEY})
            conn.commit()


def _current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade_schema(url: str) -> str | None:
    """Bring the schema at ``url`` to the newest migration; cheap when it already is.

    Safe to call from many processes at once. Returns the revision now in place.
    """
    head = _head_revision()
    if url in _upgraded:
        return head
    engine = get_engine(url)
    if _current_revision(engine) != head:
        with _migration_lock(engine):
            if _current_revision(engine) != head:
                config = Config()
                config.set_main_option("script_location", str(_MIGRATIONS))
                with engine.begin() as conn:
                    config.attributes["connection"] = conn
                    command.upgrade(config, "head")
    _upgraded.add(url)
    return head

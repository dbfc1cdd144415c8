"""Transient database errors: which ones they are, and the retry that rides out a restart.

The errors are real: a throwaway PostgreSQL database goes down as in a server restart
(``tests.helpers.postgres.outage``), SQLite files are really locked.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError

from core.db import get_engine, is_transient_db_error, retrying, session_scope
from core.errors import InputError, StorageError, is_retryable_error
from tests.helpers.clock import FakeClock
from tests.helpers.ports import free_port
from tests.helpers.postgres import outage, start_outage, temporary_database


@pytest.fixture
def pg_url() -> Iterator[str]:
    with temporary_database() as url:
        with session_scope(url) as session:
            session.execute(text("CREATE TABLE item (id int PRIMARY KEY)"))
        yield url


def _caught(work: object) -> BaseException:
    try:
        work()  # type: ignore[operator]
    except Exception as exc:  # noqa: BLE001  (the test inspects it)
        return exc
    raise AssertionError("no error")


def _backend_pid(url: str) -> int:
    with session_scope(url) as session:
        return int(session.execute(text("SELECT pg_backend_pid()")).scalar_one())


def test_a_terminated_or_refused_connection_is_transient(pg_url: str) -> None:
    with get_engine(pg_url).connect() as conn:
        conn.execute(text("SELECT 1"))
        with outage(pg_url):
            terminated = _caught(lambda: conn.execute(text("SELECT 1")))
            refused = _caught(lambda: _backend_pid(pg_url))
    assert isinstance(terminated, OperationalError)
    assert getattr(terminated.orig, "sqlstate", None) == "57P01"  # admin shutdown
    assert terminated.connection_invalidated
    assert isinstance(refused, OperationalError) and not refused.connection_invalidated
    for exc in (terminated, refused, refused.orig):
        assert is_transient_db_error(exc) and is_retryable_error(exc)


def test_integrity_and_programming_errors_are_not_transient(pg_url: str) -> None:
    def insert_twice() -> None:
        with session_scope(pg_url) as session:
            session.execute(text("INSERT INTO item VALUES (1), (1)"))

    def missing_table() -> None:
        with session_scope(pg_url) as session:
            session.execute(text("SELECT * FROM nowhere"))

    duplicate, missing = _caught(insert_twice), _caught(missing_table)
    assert isinstance(duplicate, IntegrityError) and isinstance(missing, ProgrammingError)
    for exc in (duplicate, missing, ValueError("x"), InputError("bad photo")):
        assert not is_transient_db_error(exc) and not is_retryable_error(exc)
    assert not is_transient_db_error(StorageError("hiccup")) and is_retryable_error(
        StorageError("hiccup")
    )


def test_sqlite_counts_a_locked_file_not_a_missing_table(tmp_path: Path) -> None:
    path = tmp_path / "locked.db"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("CREATE TABLE item (id int)")
    holder.execute("BEGIN EXCLUSIVE")
    engine = create_engine(f"sqlite:///{path}", connect_args={"timeout": 0})
    try:
        with engine.connect() as conn:
            locked = _caught(lambda: conn.execute(text("INSERT INTO item VALUES (1)")))
        holder.close()
        with engine.connect() as conn:
            missing = _caught(lambda: conn.execute(text("SELECT * FROM nowhere")))
    finally:
        holder.close()
        engine.dispose()
    assert isinstance(locked, OperationalError) and "locked" in str(locked)
    assert isinstance(missing, OperationalError) and "no such table" in str(missing)
    assert is_transient_db_error(locked) and is_retryable_error(locked)
    assert not is_transient_db_error(missing) and not is_retryable_error(missing)


def test_a_transaction_cut_by_a_restart_is_retried_on_a_fresh_connection(
    pg_url: str, db_warnings: list[logging.LogRecord]
) -> None:
    """The first attempt's session is terminated mid-transaction; the retry waits out the
    outage and commits on a new connection, exactly once."""
    attempts: list[int] = []
    restarts = []

    def work() -> int:
        with session_scope(pg_url) as session:
            pid = int(session.execute(text("SELECT pg_backend_pid()")).scalar_one())
            attempts.append(pid)
            session.execute(text("INSERT INTO item VALUES (:n)"), {"n": len(attempts)})
            if len(attempts) == 1:
                restarts.append(start_outage(pg_url, 1.0))
                while restarts[0].outage.started_at is None:
                    time.sleep(0.01)
            return pid

    pid = retrying(work, what="test insert", patience_s=30)
    gone = restarts[0].join()
    assert gone.terminated >= 1  # the first attempt's session was really cut
    assert len(attempts) == 2 and pid == attempts[1] != attempts[0]
    with session_scope(pg_url) as session:
        assert session.execute(text("SELECT array_agg(id) FROM item")).scalar_one() == [2]
    assert db_warnings, "the outage caused no retry"
    first = db_warnings[0].getMessage()
    assert "test insert" in first and "AdminShutdown" in first
    # The statement and its parameters stay out of the log.
    assert all("INSERT" not in record.getMessage() for record in db_warnings)


def test_retrying_backs_off_then_gives_up_after_its_patience_without_logging_the_url(
    monkeypatch: pytest.MonkeyPatch, db_warnings: list[logging.LogRecord]
) -> None:
    clock = FakeClock()  # the waits are asserted, not waited
    monkeypatch.setattr("core.db.time", clock.as_time_module())
    url = f"postgresql+psycopg://packshot:hunter2-secret@127.0.0.1:{free_port()}/jobs"
    calls: list[float] = []

    def work() -> int:
        calls.append(clock.now)
        return _backend_pid(url)  # refused at once: nobody listens on that port

    with pytest.raises(OperationalError):
        retrying(work, what="unreachable", patience_s=20)
    # From 0.5 s, doubling, at most 5 s; the last wait is what is left of the patience.
    assert clock.sleeps == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0, 2.5]
    assert len(calls) == 8 and calls[-1] - calls[0] == 20
    assert [r.args[-1] for r in db_warnings] == clock.sleeps  # type: ignore[index]
    assert all("hunter2" not in r.getMessage() for r in db_warnings)


def test_retrying_raises_other_errors_at_once(
    pg_url: str, db_warnings: list[logging.LogRecord]
) -> None:
    calls: list[int] = []

    def work() -> None:
        calls.append(1)
        with session_scope(pg_url) as session:
            session.execute(text("INSERT INTO item VALUES (7), (7)"))

    with pytest.raises(IntegrityError):
        retrying(work, what="duplicate", patience_s=30)
    assert calls == [1] and not db_warnings


def test_the_default_patience_is_the_setting(
    monkeypatch: pytest.MonkeyPatch, db_warnings: list[logging.LogRecord]
) -> None:
    from core.settings import get_settings

    monkeypatch.setenv("PACKSHOT_DB_RETRY_S", "0")
    get_settings.cache_clear()
    calls: list[int] = []

    def work() -> None:
        calls.append(1)
        raise OperationalError("SELECT 1", {}, Exception("server closed the connection"))

    with pytest.raises(OperationalError):
        retrying(work, what="no patience")
    assert calls == [1] and not db_warnings

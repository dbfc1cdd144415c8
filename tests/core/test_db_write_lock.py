"""``begin_write``: SQLite's write lock taken as soon as another connection lets it go.

The holder is a real second connection to the same file, as a flow run's or the dispatcher's
would be; nothing is faked.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError
from sqlmodel import Session

from core.db import begin_write, is_transient_db_error, session_scope
from tests.helpers.postgres import temporary_database


def _database(tmp_path: Path) -> tuple[str, Path]:
    path = tmp_path / "jobs.db"
    with session_scope(f"sqlite:///{path}") as session:
        session.execute(text("CREATE TABLE item (id int PRIMARY KEY, who text)"))
    return f"sqlite:///{path}", path


def _hold(path: Path, seconds: float, released: list[float]) -> threading.Thread:
    """Another connection takes the write lock now, writes, and commits after ``seconds``."""
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    holder.execute("INSERT INTO item VALUES (1, 'holder')")

    def release() -> None:
        time.sleep(seconds)
        released.append(time.perf_counter())
        holder.execute("COMMIT")
        holder.close()

    thread = threading.Thread(target=release)
    thread.start()
    return thread


def _busy_timeout(session: Session) -> int:
    return int(session.execute(text("PRAGMA busy_timeout")).scalar_one())


def test_the_writer_waits_for_the_holder_then_writes(tmp_path: Path) -> None:
    url, path = _database(tmp_path)
    released: list[float] = []
    holder = _hold(path, 0.2, released)
    try:
        with session_scope(url) as session:
            begin_write(session)
            acquired = time.perf_counter()
            session.execute(text("INSERT INTO item VALUES (2, 'writer')"))
            # The wait was the loop's: SQLite's own busy handler is back for later statements.
            assert _busy_timeout(session) == 30_000
    finally:
        holder.join()
    assert released and acquired >= released[0]  # it did wait for the lock
    with session_scope(url) as session:
        rows = session.execute(text("SELECT who FROM item ORDER BY id")).scalars().all()
    assert rows == ["holder", "writer"]


def test_a_lock_held_past_the_patience_is_a_transient_error(tmp_path: Path) -> None:
    url, path = _database(tmp_path)
    released: list[float] = []
    holder = _hold(path, 0.5, released)
    try:
        with pytest.raises(OperationalError) as caught, session_scope(url) as session:
            begin_write(session, patience_s=0.05)
        assert not released  # it gave up while the lock was still held
    finally:
        holder.join()
    assert is_transient_db_error(caught.value)  # the webhook answers 503: deliver again
    assert "locked" in str(caught.value)
    with session_scope(url) as session:  # the connection went back to the pool as it was
        assert _busy_timeout(session) == 30_000
        session.execute(text("INSERT INTO item VALUES (3, 'later')"))


def test_a_begun_transaction_and_postgresql_are_left_as_they_are(tmp_path: Path) -> None:
    url, _ = _database(tmp_path)
    with session_scope(url) as session:
        session.execute(text("INSERT INTO item VALUES (4, 'first')"))
        begin_write(session)  # already writing: no second BEGIN (which SQLite would refuse)
        session.execute(text("INSERT INTO item VALUES (5, 'second')"))
    with temporary_database() as pg_url, session_scope(pg_url) as session:
        begin_write(session)  # PostgreSQL locks rows: nothing to do
        assert session.execute(text("SELECT 1")).scalar_one() == 1

"""``Checkpointer``: this process's commits never checkpoint; its thread does, PASSIVE.

Real SQLite files: the main database file only grows when the log is copied back into it.
"""

from __future__ import annotations

import time
from pathlib import Path

from sqlalchemy import text

from core.checkpoint import Checkpointer
from core.db import session_scope
from tests.helpers.postgres import temporary_database

# About 2.4 MB of rows: well past the 1,000 pages (4 MB at most) that trigger SQLite's
# automatic checkpoint at the 4 KiB pages of these files.
_ROWS = 1200
_BLOB = "x" * 2000


def _write(url: str) -> None:
    with session_scope(url) as session:
        session.execute(text("CREATE TABLE IF NOT EXISTS item (id INTEGER PRIMARY KEY, b TEXT)"))
    for start in range(0, _ROWS, 100):  # many commits, as deliveries make
        with session_scope(url) as session:
            for n in range(start, start + 100):
                session.execute(text("INSERT INTO item (b) VALUES (:b)"), {"b": f"{n}{_BLOB}"})


def test_commits_leave_the_log_to_the_thread_which_copies_it_back(tmp_path: Path) -> None:
    path = tmp_path / "jobs.db"
    url = f"sqlite:///{path}"
    with session_scope(url) as session:
        session.execute(text("PRAGMA journal_mode=WAL"))
    checkpoints = Checkpointer(url, every_s=3600)  # only the final round runs in this test
    assert checkpoints.start()
    try:
        _write(url)
        with session_scope(url) as session:
            assert session.execute(text("PRAGMA wal_autocheckpoint")).scalar_one() == 0
        # Nothing was copied back by a commit: the rows are all in the log.
        assert path.stat().st_size < 100_000 < Path(f"{path}-wal").stat().st_size
    finally:
        checkpoints.stop()
    assert path.stat().st_size > _ROWS * len(_BLOB)  # the last round copied them back
    with session_scope(url) as session:  # and commits checkpoint by themselves again
        assert session.execute(text("PRAGMA wal_autocheckpoint")).scalar_one() == 1000
        assert session.execute(text("SELECT count(*) FROM item")).scalar_one() == _ROWS


def test_the_thread_checkpoints_while_the_process_writes(tmp_path: Path) -> None:
    path = tmp_path / "jobs.db"
    url = f"sqlite:///{path}"
    checkpoints = Checkpointer(url, every_s=0.05)
    assert checkpoints.start()
    try:
        _write(url)
        deadline = time.monotonic() + 10
        while path.stat().st_size < _ROWS * len(_BLOB) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert path.stat().st_size > _ROWS * len(_BLOB)
    finally:
        checkpoints.stop()


def test_postgresql_and_memory_databases_are_left_alone() -> None:
    assert not Checkpointer("sqlite://").start()
    with temporary_database() as url:
        checkpoints = Checkpointer(url)
        assert not checkpoints.start()
        checkpoints.stop()  # nothing started: nothing to stop

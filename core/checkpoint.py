"""SQLite's WAL checkpoints kept out of a process's request path (the webhook's).

In WAL mode, the connection whose commit takes the log past 1,000 pages copies the log back
into the database file and syncs both to disk, inside that commit. With the worker busy writing
images, that made one of the webhook's commits take 10–28 ms about once a second (each
transaction timed during ``benchmarks/webhook.py --with-stack``), and every delivery queued
behind its one database thread waited for it. ``Checkpointer`` turns the automatic checkpoint
off for this process's connections and checkpoints from a thread of its own instead, PASSIVE:
it waits for no reader and no writer, and commits go on meanwhile. Other processes (flow runs,
the dispatcher) keep SQLite's automatic checkpoints.
"""

from __future__ import annotations

import logging
import sqlite3
import threading

from sqlalchemy import Engine, event
from sqlalchemy.pool import ConnectionPoolEntry

from core.db import get_engine, sqlite_file

__all__ = ["Checkpointer"]

log = logging.getLogger("packshot.db")


def _no_autocheckpoint(dbapi_connection: object, _record: ConnectionPoolEntry) -> None:
    cursor = dbapi_connection.cursor()  # type: ignore[attr-defined]
    cursor.execute("PRAGMA wal_autocheckpoint=0")
    cursor.close()


class Checkpointer:
    """Checkpoints the SQLite database at ``url`` every ``every_s`` seconds from a thread."""

    def __init__(self, url: str, *, every_s: float = 1.0) -> None:
        self.url, self.every_s = url, every_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._engine: Engine | None = None

    def start(self) -> bool:
        """Take over this process's checkpoints; False (nothing done) unless a SQLite file."""
        path = sqlite_file(self.url)
        if path is None:
            return False
        self._engine = engine = get_engine(self.url)
        event.listen(engine, "connect", _no_autocheckpoint)
        engine.dispose()  # connections opened before now would still checkpoint
        self._thread = threading.Thread(
            target=self._run, args=(path,), name="packshot-checkpoint", daemon=True
        )
        self._thread.start()
        return True

    def stop(self) -> None:
        """Checkpoint once more, stop the thread, and give checkpoints back to SQLite."""
        if self._thread is None or self._engine is None:
            return
        self._stop.set()
        self._thread.join()
        self._thread = None
        event.remove(self._engine, "connect", _no_autocheckpoint)
        self._engine.dispose()

    def _run(self, path: str) -> None:
        connection = sqlite3.connect(path)
        try:
            while not self._stop.wait(self.every_s):
                self._checkpoint(connection)
            self._checkpoint(connection)
        finally:
            connection.close()

    @staticmethod
    def _checkpoint(connection: sqlite3.Connection) -> None:
        try:
            connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        except sqlite3.Error as exc:  # the next round tries again; the log only grows meanwhile
            log.warning("WAL checkpoint failed: %s", exc)

"""The webhook's database runner: synchronous database work off the event loop.

Database work is synchronous (SQLModel) and runs on a small dedicated thread pool, never on the
event loop. On SQLite that pool has one thread: writes are serialised inside the process instead
of queueing on SQLite's file lock, whose busy-wait sleeps would show up as latency spikes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

from sqlalchemy.engine import make_url

__all__ = ["DbRunner"]

P = ParamSpec("P")
T = TypeVar("T")


class DbRunner:
    """Runs synchronous database functions on a dedicated pool (one thread on SQLite)."""

    def __init__(self, database_url: str, *, threads: int | None = None) -> None:
        self.url = database_url
        sqlite = make_url(database_url).get_backend_name() == "sqlite"
        self.threads = threads or (1 if sqlite else 4)
        self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="packshot-db")

    async def run(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """``fn(*args, **kwargs)`` on the pool, awaited."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, lambda: fn(*args, **kwargs))

    def close(self) -> None:
        """Finish queued work and stop the threads."""
        self._pool.shutdown(wait=True)

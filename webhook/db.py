"""The webhook's database runner: synchronous database work off the event loop.

Database work is synchronous (SQLModel) and runs on a small dedicated thread pool, never on the
event loop. On SQLite that pool has one thread: writes are serialised inside the process instead
of queueing on SQLite's file lock, whose busy-wait sleeps would show up as latency spikes.

Deliveries are stored in groups (``DbRunner.grouped``): while one transaction runs or waits for
the database's write lock, the deliveries that arrive meanwhile queue, and the next transaction
stores all of them. A wait for the lock (a flow run is writing) then delays the deliveries of
that moment once, instead of once more for each delivery queued behind it.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Generic, ParamSpec, TypeVar

from sqlalchemy.engine import make_url
from sqlmodel import Session

from core.db import get_engine
from core.db_errors import is_transient_db_error

__all__ = ["DbRunner", "Grouped", "read"]

P = ParamSpec("P")
T = TypeVar("T")
A = TypeVar("A")
R = TypeVar("R")

# Enough for a burst at hundreds per second, small enough that one transaction stays short.
MAX_GROUP = 64


def read(url: str, query: Callable[[Session], T]) -> T:
    """``query(session)`` in a session of its own that commits nothing (counts, views)."""
    with Session(get_engine(url)) as session:
        return query(session)


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

    def grouped(self, work: Callable[[Sequence[A]], Sequence[R]]) -> Grouped[A, R]:
        """A caller of ``work`` on this pool that hands it every item queued meanwhile."""
        return Grouped(self._pool, work)

    def close(self) -> None:
        """Finish queued work and stop the threads."""
        self._pool.shutdown(wait=True)


_Waiting = tuple[A, asyncio.Future[R], asyncio.AbstractEventLoop]


class Grouped(Generic[A, R]):
    """Calls ``work(items)`` (one transaction) with the items that queued while it was busy.

    ``work`` returns one result per item, in order. If it raises, each item of that group is
    tried alone, so one bad item fails its own caller only.
    """

    def __init__(
        self, pool: ThreadPoolExecutor, work: Callable[[Sequence[A]], Sequence[R]]
    ) -> None:
        self._pool, self._work = pool, work
        self._lock = threading.Lock()
        self._queued: list[_Waiting[A, R]] = []
        self._draining = False

    async def __call__(self, item: A) -> R:
        """``item``'s result, from the next group ``work`` takes."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[R] = loop.create_future()
        with self._lock:
            self._queued.append((item, future, loop))
            start, self._draining = not self._draining, True
        if start:  # else the running drain takes it with the next group
            self._pool.submit(self._drain)
        return await future

    def _drain(self) -> None:
        finished = False
        try:
            while True:
                with self._lock:
                    group, self._queued = self._queued[:MAX_GROUP], self._queued[MAX_GROUP:]
                    if not group:  # under the lock: a caller appending now starts a new drain
                        self._draining, finished = False, True
                        return
                self._run(group)
        finally:
            if not finished:  # an unexpected error: the next caller drains again
                with self._lock:
                    self._draining = False

    def _run(self, group: list[_Waiting[A, R]]) -> None:
        try:
            results = self._work([item for item, _, _ in group])
        except Exception as exc:  # noqa: BLE001  (each caller gets its own answer)
            if len(group) == 1 or is_transient_db_error(exc):
                # The database is down or locked: trying each alone would only wait again.
                for waiting in group:
                    _settle(waiting, None, exc)
                return
            for waiting in group:  # one bad item: alone, each fails or succeeds on its own
                self._run([waiting])
            return
        for waiting, result in zip(group, results, strict=True):
            _settle(waiting, result, None)


def _settle(waiting: _Waiting[A, R], result: R | None, error: BaseException | None) -> None:
    _, future, loop = waiting

    def resolve() -> None:
        if future.done():  # the caller was cancelled (client gone)
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)  # type: ignore[arg-type]

    loop.call_soon_threadsafe(resolve)

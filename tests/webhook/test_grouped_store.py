"""Deliveries that queue while the database is busy are stored together (webhook.db.Grouped)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

import pytest
from sqlalchemy.exc import OperationalError

from core.db import upgrade_schema
from core.schemas import ImageJobSpec
from core.settings import get_settings
from tests.webhook.conftest import sha
from webhook.db import MAX_GROUP, DbRunner
from webhook.routes import store_deliveries

T = TypeVar("T")


def _queued_behind_a_busy_call(
    work: Callable[[Sequence[T]], list[T]], first: T, rest: Sequence[T]
) -> tuple[list[list[T]], list[T | BaseException]]:
    """Store ``first``; while ``work`` is busy with it, queue ``rest``. Returns the calls
    ``work`` got and each item's outcome (its result or its error), in order."""
    calls: list[list[T]] = []
    busy, release = threading.Event(), threading.Event()

    def recorded(items: Sequence[T]) -> list[T]:
        calls.append(list(items))
        if len(calls) == 1:
            busy.set()
            release.wait(10)  # the first transaction waits for the database's lock
        return work(items)

    async def deliver() -> list[T | BaseException]:
        store = DbRunner("sqlite:///:memory:").grouped(recorded)
        started = asyncio.ensure_future(store(first))
        await asyncio.to_thread(busy.wait, 10)
        queued = [asyncio.ensure_future(store(item)) for item in rest]
        await asyncio.sleep(0.05)
        release.set()
        return await asyncio.gather(started, *queued, return_exceptions=True)

    return calls, asyncio.run(deliver())


def test_items_that_queue_meanwhile_go_in_the_next_call_in_order() -> None:
    calls, results = _queued_behind_a_busy_call(
        lambda items: [item * 10 for item in items], 0, range(1, MAX_GROUP + 3)
    )
    assert results == [n * 10 for n in range(MAX_GROUP + 3)]
    # One call alone, then the queued ones at most MAX_GROUP at a time, in arrival order.
    assert calls == [[0], list(range(1, MAX_GROUP + 1)), [MAX_GROUP + 1, MAX_GROUP + 2]]


def test_a_failing_item_fails_only_its_own_caller() -> None:
    def work(items: Sequence[str]) -> list[str]:
        if "bad" in items:
            raise ValueError("bad item")
        return [item.upper() for item in items]

    calls, (first, a, bad, b) = _queued_behind_a_busy_call(work, "first", ("a", "bad", "b"))
    assert (first, a, b) == ("FIRST", "A", "B")
    assert isinstance(bad, ValueError)
    # The group failed as a whole (one transaction), then each item was stored alone.
    assert calls == [["first"], ["a", "bad", "b"], ["a"], ["bad"], ["b"]]


def test_a_database_out_of_reach_fails_the_group_at_once_without_retrying_each() -> None:
    def work(items: Sequence[int]) -> list[int]:
        if list(items) == [0]:
            return [0]
        raise OperationalError("INSERT", {}, Exception("server closed the connection"))

    calls, (first, *rest) = _queued_behind_a_busy_call(work, 0, (1, 2, 3))
    assert first == 0
    assert all(isinstance(outcome, OperationalError) for outcome in rest)
    assert calls == [[0], [1, 2, 3]]  # each alone would only wait for the database again


@pytest.mark.usefixtures("packshot_env")
def test_concurrent_deliveries_on_sqlite_store_each_job_once(tmp_path: Path) -> None:
    url = get_settings().database_url
    upgrade_schema(url)
    specs = [
        ImageJobSpec(sku=f"GROUP-{n % 5}", image_url="https://x.example/a.jpg", sha256=sha(n % 5))
        for n in range(20)
    ]

    async def deliver() -> list[str]:
        runner = DbRunner(url)
        store = runner.grouped(lambda items: store_deliveries(url, items))
        stored = await asyncio.gather(*(store(spec) for spec in specs))
        runner.close()
        return [f"{s.outcome}:{s.job_id}" for s in stored]

    outcomes = asyncio.run(deliver())
    created = [o for o in outcomes if o.startswith("created:")]
    assert len(created) == 5  # one job per (sku, sha256, theme), whatever group it fell in
    ids = {o.split(":")[1] for o in outcomes}
    assert ids == {o.split(":")[1] for o in created}
    assert sum(o.startswith("duplicate:") for o in outcomes) == 15

"""Batched dispatch against Prefect's test server: a burst becomes a few runs, each job in one.

The deployments have no worker, so runs stay Scheduled: what is checked is which runs exist and
which jobs each carries (``tests/flows/test_batch.py`` runs a batch).
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from sqlmodel import Session, select

from core import jobs
from core.db import get_engine, session_scope
from core.schemas import ImageJobSpec
from core.settings import Settings
from core.tables import Job
from flows.trigger import PROCESS_BATCH_DEPLOYMENT, JobRef, trigger_batch
from tests.helpers.deployed import deploy
from tests.webhook.conftest import make_settings, sha
from webhook.dispatcher import Dispatcher

pytestmark = pytest.mark.xdist_group("prefect")


@pytest.fixture(scope="module")
def batch_deployment(prefect_server: str) -> uuid.UUID:
    return deploy(PROCESS_BATCH_DEPLOYMENT, "flows/batch.py:process_batch")


def _settings(prefect_server: str, db_url: str, **overrides: object) -> Settings:
    values: dict[str, Any] = {"dispatch_batch_max": 6, "dispatch_spread": 2}
    values.update(overrides)
    return make_settings(prefect_api_url=prefect_server, database_url=db_url, **values)


def _enqueue(settings: Settings, first: int, count: int) -> list[uuid.UUID]:
    ids = []
    for n in range(first, first + count):
        spec = ImageJobSpec(sku=f"BURST-{n}", image_url="https://x.example/a.jpg", sha256=sha(n))
        with session_scope(settings.database_url) as session:
            ids.append(jobs.enqueue_job(session, spec=spec).job_id)
    return ids


def _rows(settings: Settings, ids: list[uuid.UUID]) -> list[Job]:
    with Session(get_engine(settings.database_url)) as session:
        found = {job.id: job for job in session.exec(select(Job)).all()}
    return [found[job_id] for job_id in ids]


async def _drain(settings: Settings, **kwargs: Any) -> list[Any]:
    results = []
    async with Dispatcher(settings, **kwargs) as dispatcher:
        while (result := await dispatcher.run_once()) is not None:
            results.append(result)
    return results


def _carried(run_ids: set[str]) -> dict[str, list[str]]:
    """Run id → the job ids its parameters name (one for a single run)."""
    from prefect import get_client

    carried = {}
    with get_client(sync_client=True) as client:
        for run_id in run_ids:
            params = client.read_flow_run(uuid.UUID(run_id)).parameters
            items = params.get("jobs") or [params]
            carried[run_id] = [str(item["job_id"]) for item in items]
            assert all(set(item) == {"job_id", "sku", "theme"} for item in items)
    return carried


def test_a_burst_becomes_a_few_runs_and_each_job_is_in_exactly_one(
    prefect_server: str, deployment_id: uuid.UUID, batch_deployment: uuid.UUID, db_url: str
) -> None:
    settings = _settings(prefect_server, db_url)
    alone = _enqueue(settings, 600, 1)
    (first,) = asyncio.run(_drain(settings))  # a photo alone goes alone, at once
    burst = _enqueue(settings, 601, 11)
    results = asyncio.run(_drain(settings))

    # 11 waiting, 2 runs at once: 6 + 5 (the size chosen when the burst began is kept).
    assert [len(r.job_ids) for r in results] == [6, 5]
    assert first.job_ids == tuple(alone)
    rows = _rows(settings, alone + burst)
    assert all(not job.dispatch_pending and job.dispatched_at for job in rows)
    runs = {job.flow_run_id for job in rows if job.flow_run_id}
    assert len(runs) == 3
    carried = _carried(runs)
    assert sorted(j for ids in carried.values() for j in ids) == sorted(map(str, alone + burst))
    assert all(carried[str(job.flow_run_id)].count(str(job.id)) == 1 for job in rows)
    assert carried[str(first.flow_run_id)] == [str(alone[0])]


def test_a_dispatcher_that_died_after_creating_a_batch_gets_the_same_run_back(
    prefect_server: str, deployment_id: uuid.UUID, batch_deployment: uuid.UUID, db_url: str
) -> None:
    settings = _settings(prefect_server, db_url)
    ids = _enqueue(settings, 620, 4)
    with session_scope(settings.database_url) as session:
        refs = [JobRef.model_validate(job) for job in jobs.claim_dispatch(session, limit=3)]
    orphan, carried = asyncio.run(trigger_batch(refs))  # then the dispatcher died
    assert carried == ids[:3]

    found, last = asyncio.run(_drain(settings))
    # The new claim (two of the four) sent the same key; Prefect's run carries three: all
    # three are recorded on it, and the fourth gets a run of its own.
    assert found.flow_run_id == orphan and found.job_ids == tuple(ids[:3])
    assert last.job_ids == (ids[3],) and last.flow_run_id != orphan
    rows = _rows(settings, ids)
    assert [job.flow_run_id for job in rows] == [orphan] * 3 + [last.flow_run_id]
    assert not any(job.dispatch_pending for job in rows)


def test_without_the_batch_deployment_every_job_gets_its_own_run(
    prefect_server: str, deployment_id: uuid.UUID, db_url: str
) -> None:
    settings = _settings(prefect_server, db_url, dispatch_spread=1)  # one run for all three
    ids = _enqueue(settings, 640, 3)
    results = asyncio.run(_drain(settings, batch_deployment="process-batch/absent"))
    assert [r.job_ids for r in results] == [(job_id,) for job_id in ids]
    rows = _rows(settings, ids)
    assert all(not job.dispatch_pending and job.dispatch_error is None for job in rows)
    assert len({job.flow_run_id for job in rows}) == 3


def test_the_batch_size_shares_a_burst_among_the_runs_at_once(tmp_path: Any) -> None:
    settings = make_settings(dispatch_batch_max=4, dispatch_spread=3)
    dispatcher = Dispatcher(settings, db=object())  # type: ignore[arg-type]
    assert dispatcher.batch_size(1) == 1
    assert [dispatcher.batch_size(n) for n in (10, 6, 2)] == [4, 4, 2]  # kept while draining
    assert dispatcher.batch_size(1) == 1  # the burst is over
    assert dispatcher.batch_size(5) == 2  # a new burst: its own size
    assert Dispatcher(make_settings(dispatch_batch_max=1), db=object()).batch_size(9) == 1  # type: ignore[arg-type]
    spread = Dispatcher(make_settings(workers=2, worker_limit=3, dispatch_batch_max=9), db=object())  # type: ignore[arg-type]
    assert spread.spread == 6 and spread.batch_size(30) == 5


def test_a_burst_is_shared_in_whole_rounds_of_the_runs_at_once() -> None:
    dispatcher = Dispatcher(make_settings(dispatch_batch_max=6, dispatch_spread=2), db=object())  # type: ignore[arg-type]

    def drain(burst: int, arriving: dict[int, int] | None = None) -> list[int]:
        sizes, waiting, taken = [], burst, 0
        while waiting:
            sizes.append(dispatcher.batch_size(waiting))
            waiting -= sizes[-1]
            taken += 1
            waiting += (arriving or {}).get(taken, 0)
        assert dispatcher.batch_size(0) == 1  # the dispatcher finds none waiting: burst over
        return sizes

    assert drain(40) == [5] * 8  # four rounds of two, no round with a slot idle
    assert drain(12) == [6, 6]
    assert drain(11) == [6, 5]
    assert drain(13) == [4, 4, 4, 1]
    # Jobs that join a burst being shared out are planned with it.
    assert drain(12, arriving={1: 12}) == [6, 6, 6, 6]


def test_prefect_busy_is_tried_again_at_once_and_recorded_as_no_failure(
    prefect_server: str,
    deployment_id: uuid.UUID,
    batch_deployment: uuid.UUID,
    db_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Prefect answers 503 while its SQLite database is busy: the batch is created on a quick
    second try, not after the client's 2 s back-off nor as a failed dispatch."""
    import time

    import httpx

    from webhook import dispatcher as module

    calls: list[float] = []
    real = module.trigger_batch

    async def busy_once(*args: Any, **kwargs: Any) -> Any:
        calls.append(time.monotonic())
        if len(calls) == 1:
            request = httpx.Request("POST", f"{prefect_server}/deployments/x/create_flow_run")
            answer = httpx.Response(503, request=request, json={"exception_message": "busy"})
            raise httpx.HTTPStatusError("503 Service Unavailable", request=request, response=answer)
        return await real(*args, **kwargs)

    monkeypatch.setattr(module, "trigger_batch", busy_once)
    settings = _settings(prefect_server, db_url, dispatch_spread=1)  # one run for all three
    ids = _enqueue(settings, 640, 3)
    (result,) = asyncio.run(_drain(settings))

    assert result.ok and result.job_ids == tuple(ids)
    assert len(calls) == 2 and calls[1] - calls[0] < 1.0  # a tenth of a second, jittered
    rows = _rows(settings, ids)
    assert {job.flow_run_id for job in rows} == {result.flow_run_id}
    assert [job.dispatch_attempts for job in rows] == [1, 1, 1]  # the first try is no failure
    assert not any(job.dispatch_error for job in rows)

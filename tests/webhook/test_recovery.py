"""Crash recovery against Prefect's test server: crashed runs are run again, then failed.

The deployment has no worker, so runs stay Scheduled until a test forces their state, as the
zombie automation (Crashed) or a dying flow process (Failed) would.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from typing import Any

import pytest
from sqlmodel import Session, select

from core import crashes, jobs
from core.db import get_engine, session_scope, upgrade_schema
from core.schemas import ImageJobSpec
from core.settings import Settings
from core.tables import Job, JobStatus, JobStep, Step, StepState
from tests.helpers.postgres import temporary_database
from tests.webhook.conftest import flow_runs_by_key, make_settings, sha
from webhook.db import DbRunner
from webhook.dispatcher import Dispatcher
from webhook.recovery import Recovery, RecoveryRound

pytestmark = pytest.mark.xdist_group("prefect")


def _settings(prefect_server: str, db_url: str, **overrides: object) -> Settings:
    return make_settings(
        prefect_api_url=prefect_server, database_url=db_url, crash_reruns=2, **overrides
    )


def _enqueue(settings: Settings, n: int) -> uuid.UUID:
    spec = ImageJobSpec(sku=f"CRASH-{n}", image_url="https://x.example/a.jpg", sha256=sha(n))
    with session_scope(settings.database_url) as session:
        job_id = jobs.enqueue_job(session, spec=spec).job_id
    return job_id


def _job(settings: Settings, job_id: uuid.UUID) -> Job:
    with Session(get_engine(settings.database_url), expire_on_commit=False) as session:
        job = session.get(Job, job_id)
        assert job is not None
        return job


async def _dispatch(settings: Settings) -> None:
    async with Dispatcher(settings) as dispatcher:
        while await dispatcher.run_once() is not None:
            pass


async def _force(run_id: str, state: str, message: str) -> None:
    from prefect import get_client
    from prefect.states import Crashed, Failed, Running

    make = {"crashed": Crashed, "failed": Failed, "running": Running}[state]
    async with get_client() as client:
        await client.set_flow_run_state(uuid.UUID(run_id), make(message=message), force=True)


async def _recover(settings: Settings) -> RecoveryRound:
    from prefect import get_client

    db = DbRunner(settings.database_url)
    try:
        async with get_client() as client:
            return await Recovery(settings, db=db, client=client).run_once()
    finally:
        db.close()


def _start_step(settings: Settings, job_id: uuid.UUID, step: Step) -> None:
    with session_scope(settings.database_url) as session:
        jobs.start_job(session, job_id=job_id)
        jobs.step_started(session, job_id=job_id, step=step)


def test_a_crashed_run_is_run_again_then_the_job_fails_with_the_reason(
    prefect_server: str, deployment_id: uuid.UUID, db_url: str
) -> None:
    settings = _settings(prefect_server, db_url)
    job_id = _enqueue(settings, 400)
    asyncio.run(_dispatch(settings))
    runs = [_job(settings, job_id).flow_run_id]
    for attempt in range(1, 3):
        _start_step(settings, job_id, Step.COMPOSITE)
        asyncio.run(_force(str(runs[-1]), "crashed", "no heartbeat"))
        assert asyncio.run(_recover(settings)).requeued == [job_id]
        job = _job(settings, job_id)
        assert job.dispatch_pending and job.recoveries == attempt
        assert "crashed: no heartbeat" in (job.dispatch_error or "")
        asyncio.run(_dispatch(settings))
        runs.append(_job(settings, job_id).flow_run_id)
    keys = {str(job_id), f"{job_id}:recover:1", f"{job_id}:recover:2"}
    by_key = flow_runs_by_key(deployment_id, keys)
    assert [len(by_key[k]) for k in sorted(keys)] == [1, 1, 1]  # one new run per recovery
    assert len(set(runs)) == 3

    _start_step(settings, job_id, Step.DERIVATIVES)
    asyncio.run(_force(str(runs[-1]), "crashed", "no heartbeat"))
    result = asyncio.run(_recover(settings))
    assert result.failed == [job_id] and not result.requeued
    job = _job(settings, job_id)
    assert job.status == JobStatus.FAILED and job.error_type == "Crashed"
    assert job.error_step == Step.COMPOSITE.value  # the earliest step left running
    assert "crashed 3 times" in (job.error or "") and not job.dispatch_pending
    with Session(get_engine(settings.database_url)) as session:
        states = {row.step: row.state for row in session.exec(select(JobStep)).all()}
    assert states == {
        Step.COMPOSITE.value: StepState.FAILED,
        Step.DERIVATIVES.value: StepState.FAILED,
    }
    assert asyncio.run(_recover(settings)) == RecoveryRound()  # nothing left to do


def test_runs_still_going_and_finished_jobs_are_left_alone(
    prefect_server: str, deployment_id: uuid.UUID, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("webhook.recovery._PAGE", 1)  # runs are read in pages (200 a call)
    settings = _settings(prefect_server, db_url)
    running, done = _enqueue(settings, 410), _enqueue(settings, 411)
    crashed = _enqueue(settings, 412)
    asyncio.run(_dispatch(settings))
    asyncio.run(_force(str(_job(settings, running).flow_run_id), "running", "working"))
    asyncio.run(_force(str(_job(settings, crashed).flow_run_id), "crashed", "lost host"))
    with session_scope(settings.database_url) as session:
        jobs.finish_job(session, job_id=done, manifest_key="manifests/x.json")
    asyncio.run(_force(str(_job(settings, done).flow_run_id), "crashed", "after the end"))
    assert asyncio.run(_recover(settings)) == RecoveryRound(requeued=[crashed])
    assert _job(settings, running).status == JobStatus.NEW
    assert _job(settings, done).status == JobStatus.DONE


def test_a_failed_run_that_never_recorded_it_fails_the_job(
    prefect_server: str, deployment_id: uuid.UUID, db_url: str
) -> None:
    settings = _settings(prefect_server, db_url)
    job_id = _enqueue(settings, 420)
    asyncio.run(_dispatch(settings))
    message = "Validation of flow parameters failed; see https://cdn.example/a.jpg?sig=s3cr3t"
    asyncio.run(_force(str(_job(settings, job_id).flow_run_id), "failed", message))
    assert asyncio.run(_recover(settings)).failed == [job_id]
    job = _job(settings, job_id)
    assert job.status == JobStatus.FAILED and job.error_type == "FlowRunFailed"
    assert job.error_step == "flow" and "Validation of flow parameters" in (job.error or "")
    assert "s3cr3t" not in (job.error or "")


def test_two_replicas_requeue_a_crashed_job_once(
    prefect_server: str, deployment_id: uuid.UUID, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Row locks keep replicas apart (PostgreSQL; one webhook per SQLite database).

    The first replica holds the job's row lock (its requeue is made, not yet committed) while the
    second runs a whole round: without the lock both would requeue it, a lost update.
    """
    with temporary_database() as url:
        upgrade_schema(url)
        _two_replicas(_settings(prefect_server, url), monkeypatch)


def _two_replicas(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    job_id = _enqueue(settings, 430)
    asyncio.run(_dispatch(settings))
    asyncio.run(_force(str(_job(settings, job_id).flow_run_id), "crashed", "lost host"))
    holding, released = threading.Event(), threading.Event()
    requeue = crashes.requeue_crashed

    def requeue_then_hold(session: Session, **kwargs: object) -> bool:
        done = requeue(session, **kwargs)  # type: ignore[arg-type]
        if not holding.is_set():  # the first replica: keep the transaction (and lock) open
            holding.set()
            released.wait(30)  # a blocking lock instead of SKIP LOCKED ends the wait by timeout
        return done

    monkeypatch.setattr(crashes, "requeue_crashed", requeue_then_hold)

    async def overlapping() -> tuple[RecoveryRound, RecoveryRound]:
        first = asyncio.ensure_future(_recover(settings))
        assert await asyncio.to_thread(holding.wait, 60), "the first replica never took the lock"
        second = await _recover(settings)  # runs entirely while the first holds the row
        released.set()
        return await first, second

    first, second = asyncio.run(overlapping())
    assert first == RecoveryRound(requeued=[job_id])
    assert second == RecoveryRound()  # it saw the job in flight, but could not take its row
    job = _job(settings, job_id)
    assert job.recoveries == 1 and job.dispatch_pending


async def _subflow_of_a_batch() -> tuple[str, str]:
    """A batch run with one photo's subflow running in it: (batch run id, subflow run id)."""
    from prefect import get_client
    from prefect.client.schemas.objects import TaskRun
    from prefect.states import Running

    async with get_client() as client:
        batch = await client.create_flow_run_from_deployment(
            await _deployment_id(client, "process-image/default"), state=Running()
        )
        parent: TaskRun = await client.create_task_run(
            task=_tracking_task(), flow_run_id=batch.id, dynamic_key="0", state=Running()
        )
        flow = await client.read_flow(batch.flow_id)
        sub = await client.create_flow_run(
            flow=_named_flow(flow.name), parent_task_run_id=parent.id, state=Running()
        )
    return str(batch.id), str(sub.id)


async def _deployment_id(client: Any, name: str) -> uuid.UUID:
    return (await client.read_deployment_by_name(name)).id


def _tracking_task() -> Any:
    from prefect import task

    return task(name="process-image")(lambda: None)


def _named_flow(name: str) -> Any:
    from prefect import flow

    return flow(name=name)(lambda: None)


def test_a_photo_whose_batch_run_crashed_is_run_again(
    prefect_server: str, deployment_id: uuid.UUID, db_url: str
) -> None:
    """The batch's process died: the batch run is Crashed, the photo's subflow still Running."""
    settings = _settings(prefect_server, db_url)
    job_id = _enqueue(settings, 430)
    batch, sub = asyncio.run(_subflow_of_a_batch())
    with session_scope(settings.database_url) as session:
        jobs.mark_waiting_dispatched(session, job_ids=[job_id], flow_run_id=batch)
        jobs.start_job(session, job_id=job_id, flow_run_id=sub)  # the subflow opened the job
    assert asyncio.run(_recover(settings)) == RecoveryRound()  # the batch still runs

    asyncio.run(_force(batch, "crashed", "worker machine lost"))
    assert asyncio.run(_recover(settings)).requeued == [job_id]
    job = _job(settings, job_id)
    assert job.dispatch_pending and job.recoveries == 1
    assert "crashed: worker machine lost" in (job.dispatch_error or "")
    assert asyncio.run(_state_of(sub)) == "CRASHED"  # the orphaned subflow shows it too
    assert asyncio.run(_recover(settings)) == RecoveryRound()


async def _state_of(run_id: str) -> str:
    from prefect import get_client

    async with get_client() as client:
        run = await client.read_flow_run(uuid.UUID(run_id))
    return run.state.type.value  # type: ignore[union-attr]

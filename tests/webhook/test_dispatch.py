"""The outbox dispatcher against Prefect's test server: one flow run per job, whatever happens.

Flow runs are counted in the Prefect API by idempotency key (= job id), not in our table.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
import pytest
from sqlmodel import Session, select

from core import jobs
from core.db import get_engine, session_scope, upgrade_schema
from core.schemas import ImageJobSpec
from core.settings import Settings
from core.tables import Job
from flows.trigger import JobRef, trigger_job
from tests.helpers.ports import free_port
from tests.helpers.postgres import temporary_database
from tests.webhook.conftest import (
    URL_PATH,
    LiveApp,
    TcpProxy,
    encode,
    event,
    flow_runs_by_key,
    make_settings,
    serve_app,
    sha,
    signed_headers,
)
from webhook import dispatcher as dispatcher_module
from webhook.dispatcher import Dispatcher, backoff_delay, is_transient, run_dispatcher

pytestmark = pytest.mark.xdist_group("prefect")


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest) -> Iterator[str | None]:
    if request.param == "sqlite":
        yield None  # the test's own PACKSHOT_HOME
        return
    with temporary_database() as url:
        yield url


def _all_jobs(settings: Settings) -> list[Job]:
    with Session(get_engine(settings.database_url)) as session:
        return list(session.exec(select(Job)).all())


def _flow_run_id(live: LiveApp, job_id: str) -> str | None:
    return live.get(f"/api/jobs/{job_id}").json()["flowRunId"]


def test_fifty_concurrent_identical_deliveries_make_one_job_and_one_flow_run(
    prefect_server: str, deployment_id: uuid.UUID, database_url: str | None
) -> None:
    overrides = {"database_url": database_url} if database_url else {}
    settings = make_settings(dispatcher_enabled=True, prefect_api_url=prefect_server, **overrides)
    body = encode(event(50))
    headers = signed_headers(body)

    async def burst(url: str) -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=50)
        async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as client:
            return await asyncio.gather(
                *(client.post(URL_PATH, content=body, headers=headers) for _ in range(50))
            )

    with serve_app(settings) as live:
        responses = asyncio.run(burst(live.url))
        codes = sorted(r.status_code for r in responses)
        assert codes == [200] * 49 + [202]
        job_ids = {r.json()["jobId"] for r in responses}
        assert len(job_ids) == 1
        job_id = job_ids.pop()
        assert len(_all_jobs(settings)) == 1
        live.wait_for(lambda: _flow_run_id(live, job_id) is not None)
        assert live.post(body).json() == {"jobId": job_id, "status": "NEW", "duplicate": True}
        live.wait_for(lambda: live.backlog() == 0)
        runs = flow_runs_by_key(deployment_id, {job_id})[job_id]
        assert runs == [_flow_run_id(live, job_id)]
        health = live.get("/healthz").json()
        assert health["dispatcher"]["alive"] and health["dispatcher"]["dispatched"] == 1


def test_a_failed_job_delivered_again_gets_a_new_run_with_its_own_key(
    prefect_server: str, deployment_id: uuid.UUID
) -> None:
    settings = make_settings(dispatcher_enabled=True, prefect_api_url=prefect_server)
    with serve_app(settings) as live:
        job_id = live.post(event(60)).json()["jobId"]
        live.wait_for(lambda: _flow_run_id(live, job_id) is not None)
        first_run = _flow_run_id(live, job_id)
        with session_scope(settings.database_url) as session:
            jobs.fail_job(
                session, job_id=uuid.UUID(job_id), step="download", error_type="E", message="x"
            )
        fixed = event(60, imageUrl="https://cdn.3jms.example/media/60-fixed.jpg")
        assert live.post(fixed).json() == {"jobId": job_id, "status": "requeued"}
        live.wait_for(lambda: _flow_run_id(live, job_id) not in (None, first_run))
        second_run = _flow_run_id(live, job_id)
        # Delivered again while the attempt waits or runs: no third run.
        assert live.post(fixed).json()["duplicate"] is True
        live.wait_for(lambda: live.backlog() == 0)
    retry_key = f"{job_id}:redeliver:1"
    runs = flow_runs_by_key(deployment_id, {job_id, retry_key})
    assert runs == {job_id: [first_run], retry_key: [second_run]}
    (job,) = [j for j in _all_jobs(settings) if str(j.id) == job_id]
    assert job.source_url == fixed["imageUrl"] and job.redeliveries == 1


def test_prefect_down_delays_dispatch_and_a_restart_loses_nothing(
    prefect_server: str, deployment_id: uuid.UUID
) -> None:
    target = urlsplit(prefect_server)
    proxy = TcpProxy(free_port(), (target.hostname or "127.0.0.1", target.port or 80))
    dead_url = f"http://127.0.0.1:{proxy.port}{target.path}"  # nobody listens there yet
    settings = make_settings(dispatcher_enabled=True, prefect_api_url=dead_url)
    job_ids: list[str] = []
    with serve_app(settings) as live:
        for n in range(4):
            response = live.post(event(100 + n))
            assert response.status_code == 202, response.text
            job_ids.append(response.json()["jobId"])
        live.wait_for(lambda: live.get("/healthz").json()["dispatcher"]["consecutiveFailures"] >= 2)
        health = live.get("/healthz").json()
        assert health["status"] == "ok" and health["backlog"] == 4
        assert "ConnectError" in health["dispatcher"]["lastError"]
    head = min(_all_jobs(settings), key=lambda job: job.created_at)
    assert head.dispatch_pending and head.dispatch_attempts >= 2
    assert "ConnectError" in (head.dispatch_error or "")
    # The webhook restarts while Prefect is still down; the waiting jobs are still there.
    with serve_app(settings) as live:
        response = live.post(event(104))
        assert response.status_code == 202
        job_ids.append(response.json()["jobId"])
        assert flow_runs_by_key(deployment_id, set(job_ids)) == {key: [] for key in job_ids}
        proxy.start()  # Prefect is back
        try:
            live.wait_for(lambda: live.backlog() == 0, timeout=60)
            runs = flow_runs_by_key(deployment_id, set(job_ids))
            assert all(len(found) == 1 for found in runs.values()), runs
            for job_id in job_ids:
                assert _flow_run_id(live, job_id) == runs[job_id][0]
        finally:
            proxy.stop()
    assert all(not job.dispatch_pending and job.dispatched_at for job in _all_jobs(settings))


def test_dispatcher_restart_mid_queue_loses_and_duplicates_nothing(
    prefect_server: str, deployment_id: uuid.UUID
) -> None:
    settings = make_settings(prefect_api_url=prefect_server)  # no dispatcher in the webhook
    with serve_app(settings) as live:
        job_ids = [live.post(event(200 + n)).json()["jobId"] for n in range(6)]
        assert live.backlog() == 6

    async def first_dispatcher() -> list[str | None]:
        async with Dispatcher(settings) as dispatcher:
            return [(await dispatcher.run_once()).flow_run_id for _ in range(2)]  # type: ignore[union-attr]

    first = asyncio.run(first_dispatcher())
    assert all(first)
    # The next job's run is created, then the dispatcher dies before recording it.
    with session_scope(settings.database_url) as session:
        crashed = jobs.claim_next_dispatch(session)
        assert crashed is not None and str(crashed.id) == job_ids[2]
        ref = JobRef.model_validate(crashed)
    orphan_run = asyncio.run(trigger_job(ref))

    async def second_dispatcher() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(run_dispatcher(settings, stop))
        while True:
            with Session(get_engine(settings.database_url)) as session:
                if jobs.count_pending_dispatch(session) == 0:
                    break
            await asyncio.sleep(0.05)
        stop.set()
        await asyncio.wait_for(task, timeout=30)

    asyncio.run(asyncio.wait_for(second_dispatcher(), timeout=60))
    runs = flow_runs_by_key(deployment_id, set(job_ids))
    assert all(len(found) == 1 for found in runs.values()), runs
    by_id = {str(job.id): job for job in _all_jobs(settings)}
    assert by_id[job_ids[2]].flow_run_id == orphan_run == runs[job_ids[2]][0]
    assert [by_id[j].flow_run_id for j in job_ids[:2]] == first
    assert all(by_id[j].flow_run_id == runs[j][0] for j in job_ids)


def test_jobs_that_already_have_a_run_are_never_dispatched(prefect_server: str) -> None:
    settings = make_settings(prefect_api_url=prefect_server)
    upgrade_schema(settings.database_url)
    spec = ImageJobSpec(sku="CLI-2", image_url="https://x.example/a.jpg", sha256=sha(300))
    with session_scope(settings.database_url) as session:
        jobs.get_or_create_job(session, spec=spec)

    async def once() -> object:
        async with Dispatcher(settings) as dispatcher:
            return await dispatcher.run_once()

    assert asyncio.run(once()) is None


def test_a_missing_deployment_keeps_the_job_waiting(prefect_server: str) -> None:
    """Prefect answers but has no such deployment: a global failure, retried, never dropped."""
    settings = make_settings(prefect_api_url=prefect_server)
    upgrade_schema(settings.database_url)
    spec = ImageJobSpec(sku="NODEP", image_url="https://x.example/a.jpg", sha256=sha(301))
    with session_scope(settings.database_url) as session:
        job_id = jobs.enqueue_job(session, spec=spec).job_id

    async def once() -> object:
        async with Dispatcher(settings, deployment="process-image/absent") as dispatcher:
            return await dispatcher.run_once()

    result = asyncio.run(once())
    assert result.transient and not result.ok  # type: ignore[attr-defined]
    with Session(get_engine(settings.database_url)) as session:
        row = session.get(Job, job_id)
        assert row is not None and row.dispatch_pending and row.dispatch_attempts == 1
        assert row.dispatch_next_at is None and "ObjectNotFound" in (row.dispatch_error or "")


def test_backoff_is_exponential_capped_and_jittered() -> None:
    rng = random.Random(1)
    delays = [backoff_delay(n, cap=8.0, rng=rng) for n in range(1, 10)]
    ceilings = [min(8.0, 0.5 * 2 ** (n - 1)) for n in range(1, 10)]
    assert all(c / 2 <= d <= c for d, c in zip(delays, ceilings, strict=True))
    assert max(delays) <= 8.0 and len({round(d, 6) for d in delays}) == len(delays)


def test_which_failures_are_prefects() -> None:
    from prefect.exceptions import ObjectNotFound

    request = httpx.Request("POST", "http://x/api/deployments/1/create_flow_run")

    def status(code: int) -> httpx.HTTPStatusError:
        return httpx.HTTPStatusError(
            "x", request=request, response=httpx.Response(code, request=request)
        )

    assert is_transient(httpx.ConnectError("refused"))
    assert is_transient(TimeoutError())
    assert is_transient(status(503)) and is_transient(status(429))
    assert is_transient(ObjectNotFound(http_exc=status(404)))
    assert not is_transient(status(422))
    assert not is_transient(ValueError("bad parameters"))


def test_a_job_prefect_refuses_waits_while_the_jobs_behind_it_go_on(
    prefect_server: str, deployment_id: uuid.UUID, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failure of one job (Prefect rejects its parameters) backs off that job alone."""
    # A wait longer than the test: on a loaded machine the usual first wait (0.5-1 s) can pass
    # before the next claim, and the refused job, the oldest, would rightly be due again.
    monkeypatch.setattr(dispatcher_module, "backoff_delay", lambda *_, **__: 60.0)

    async def strict_deployment() -> None:
        from prefect import get_client

        async with get_client() as client:
            flow_id = await client.create_flow_from_name("process-image")
            await client.create_deployment(
                flow_id=flow_id,
                name="strict",
                entrypoint="flows/process_image.py:process_image",
                parameter_openapi_schema={
                    "type": "object",
                    "properties": {"sku": {"type": "string", "maxLength": 4}},
                },
                enforce_parameter_schema=True,
            )

    asyncio.run(strict_deployment())
    settings = make_settings(prefect_api_url=prefect_server)
    upgrade_schema(settings.database_url)
    ids = []
    for n, sku in enumerate(["TOO-LONG-SKU", "OK1"]):
        url = "https://x.example/a.jpg?token=s3cret-token"
        spec = ImageJobSpec(sku=sku, image_url=url, sha256=sha(400 + n))
        with session_scope(settings.database_url) as session:
            ids.append(jobs.enqueue_job(session, spec=spec).job_id)

    async def three() -> list:
        async with Dispatcher(settings, deployment="process-image/strict") as dispatcher:
            return [await dispatcher.run_once() for _ in range(3)]

    refused, dispatched, nothing_due = asyncio.run(three())
    assert refused.job_id == ids[0] and not refused.ok and not refused.transient
    assert dispatched.job_id == ids[1] and dispatched.ok
    assert nothing_due is None
    with Session(get_engine(settings.database_url)) as session:
        row = session.get(Job, ids[0])
        assert row is not None and row.dispatch_pending and row.dispatch_next_at is not None
        assert row.dispatch_attempts == 1 and row.dispatch_error
        assert "s3cret-token" not in row.dispatch_error

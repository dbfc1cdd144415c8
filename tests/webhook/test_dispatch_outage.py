"""A PostgreSQL restart under the webhook: deliveries get a clear 503, the dispatcher waits
it out and then creates the runs of the jobs accepted before it, once each."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest

from tests.helpers.ports import free_port
from tests.helpers.postgres import outage, temporary_database
from tests.webhook.conftest import (
    LiveApp,
    TcpProxy,
    event,
    flow_runs_by_key,
    make_settings,
    serve_app,
)

pytestmark = pytest.mark.xdist_group("prefect")


def _event_name(record: logging.LogRecord) -> str:
    return record.getMessage().split(" ", 1)[0].removeprefix("event=")  # logfmt: event=… first


@pytest.fixture
def dispatcher_events() -> Iterator[list[str]]:
    """The dispatcher's log events, by name."""
    names: list[str] = []
    handler = logging.Handler(logging.INFO)
    handler.emit = lambda record: names.append(_event_name(record))  # type: ignore[method-assign]
    logger = logging.getLogger("packshot.webhook.dispatcher")
    logger.addHandler(handler)
    try:
        yield names
    finally:
        logger.removeHandler(handler)


def _dispatcher(live: LiveApp) -> dict[str, object]:
    return live.get("/healthz").json()["dispatcher"]


def test_the_dispatcher_survives_a_database_restart_and_dispatches_what_waited(
    prefect_server: str, deployment_id: uuid.UUID, dispatcher_events: list[str]
) -> None:
    target = urlsplit(prefect_server)
    proxy = TcpProxy(free_port(), (target.hostname or "127.0.0.1", target.port or 80))
    prefect_url = f"http://127.0.0.1:{proxy.port}{target.path}"  # down until proxy.start()
    with temporary_database() as url:
        settings = make_settings(
            dispatcher_enabled=True, prefect_api_url=prefect_url, database_url=url
        )
        with serve_app(settings) as live:
            accepted = [live.post(event(700 + n)) for n in range(3)]
            assert [r.status_code for r in accepted] == [202] * 3
            job_ids = {r.json()["jobId"] for r in accepted}
            live.wait_for(lambda: int(_dispatcher(live)["consecutiveFailures"]) >= 1)  # type: ignore[call-overload]
            try:
                with outage(url, 2.0) as gone:
                    refused = live.post(event(799))
                    assert refused.status_code == 503
                    assert refused.json()["error"] == "unavailable"
                    assert "database unavailable" in refused.json()["message"]
                    reading = live.get(f"/api/jobs/{next(iter(job_ids))}")
                    assert reading.status_code == 503
                    assert reading.json()["error"] == "unavailable"
                    live.wait_for(lambda: "database" in str(_dispatcher(live)["lastError"]))
                    proxy.start()  # Prefect is back first: only the database holds the queue
                    health = live.get("/healthz")
                    assert health.status_code == 503 and health.json()["db"].startswith("error")
                    assert health.json()["dispatcher"]["alive"]
                assert gone.terminated >= 1
                db_errors = dispatcher_events.count("dispatch.db_error")
                # Backing off between 0.15 and 0.3 s (the test settings) over 2 s: no spinning.
                assert 2 <= db_errors <= 20, dispatcher_events
                live.wait_for(lambda: live.backlog() == 0, timeout=30)
                runs = flow_runs_by_key(deployment_id, job_ids)
                assert all(len(found) == 1 for found in runs.values()), runs
                for job_id in job_ids:
                    flow_run = live.get(f"/api/jobs/{job_id}").json()["flowRunId"]
                    assert flow_run == runs[job_id][0]
                after = _dispatcher(live)
                assert after["alive"] and after["dispatched"] == 3
                assert after["lastError"] is None and after["consecutiveFailures"] == 0
                # Down again with nothing queued: once it answers, health forgets the errors.
                with outage(url, 0.5):
                    live.wait_for(
                        lambda: str(_dispatcher(live)["lastError"]).startswith("database")
                    )
                live.wait_for(lambda: _dispatcher(live)["lastError"] is None, timeout=10)
                assert _dispatcher(live)["consecutiveFailures"] == 0
                assert "dispatch.db_recovered" in dispatcher_events
            finally:
                proxy.stop()

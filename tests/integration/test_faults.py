"""Faults on the production site: each ends with every job DONE (or FAILED with a reason).

A lost worker machine, the Prefect server down while webhooks arrive, S3 throttling and
failing, PostgreSQL restarting mid-run. Nothing accepted may be lost, and nothing finished is
done again.
"""

from __future__ import annotations

import threading
from collections import Counter

import pytest
from sqlmodel import Session, col, select

from core.db import get_engine
from core.tables import JobStatus, JobStep, StepState
from deployments import proctree
from tests.helpers.postgres import start_outage
from tests.helpers.site import BUCKET, Site, forked_runs, kill_machine

# Each fault waits minutes for the site to recover; the first also starts the site.
pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(900)]


@pytest.fixture
def site(fault_site: Site) -> Site:
    """This module's production site."""
    return fault_site


STARTED = {"BG_REMOVED", "BACKGROUND_READY", "COMPOSITED"}  # mid-flow


def _steps(site: Site, job_id: str) -> dict[tuple[str, int], JobStep]:
    import uuid

    with Session(get_engine(site.settings.database_url)) as session:
        rows = session.exec(select(JobStep).where(col(JobStep.job_id) == uuid.UUID(job_id)))
        return {(row.step, row.variant): row for row in rows.all()}


def _assert_done(site: Site, ids: list[str], timeout: float = 300) -> None:
    jobs = site.wait_until_ended(ids, timeout=timeout)
    assert {j.status for j in jobs.values()} == {JobStatus.DONE}, {
        j.sku: j.error for j in jobs.values()
    }
    runs = site.settled_flow_runs(ids)
    assert all(runs[i] for i in ids)


def test_a_worker_killed_mid_flow_crashes_its_run_and_a_rerun_skips_finished_steps(
    site: Site,
) -> None:
    job_id = site.deliver("FAULT-KILL", 2001).json()["jobId"]
    site.wait_for_status(job_id, STARTED, timeout=180)
    run_id = site.jobs([job_id])[job_id].flow_run_id
    assert run_id is not None
    running = forked_runs(site)
    assert running  # the run's process was forked from its worker's warm engine
    killed = kill_machine(site, run_id)
    # Killed with its command (nothing signals it directly), as a machine's death ends it.
    assert not proctree.wait_gone(running, 10)
    before = _steps(site, job_id)
    finished = {key for key, row in before.items() if row.state == StepState.COMPLETED}
    assert ("remove_background", 0) in finished
    assert site.jobs([job_id])[job_id].status != JobStatus.DONE  # really mid-flow

    # Zombie automation (45 s without a heartbeat) → Crashed → recovery → the other worker.
    _assert_done(site, [job_id], timeout=240)
    job = site.jobs([job_id])[job_id]
    assert job.recoveries == 1
    runs = sorted(site.settled_flow_runs([job_id])[job_id], key=lambda r: r.created)
    assert [r.state.type.value for r in runs] == ["CRASHED", "COMPLETED"]
    assert runs[1].idempotency_key == f"{job_id}:recover:1"
    after = _steps(site, job_id)
    for key in finished:
        assert after[key].state == StepState.SKIPPED, (key, after[key].state)
    cutouts = [p for p in site.s3.puts if p.startswith(f"/{BUCKET}/assets/cutouts/FAULT-KILL/")]
    assert len(cutouts) == 1  # the cutout was not made again
    # The supervisor replaced the dead worker, as a machine's process manager would.
    assert site.stack.service(killed).alive()


def test_webhooks_accepted_while_prefect_is_down_are_dispatched_when_it_returns(site: Site) -> None:
    # Held down: the supervisor would otherwise start it again within a second.
    with site.stack.held("prefect"):
        answers = [site.deliver(f"FAULT-API-{n}", 2100 + n) for n in range(3)]
        assert [a.status_code for a in answers] == [202, 202, 202]
        ids = [a.json()["jobId"] for a in answers]
        # The dispatcher tried while Prefect was down: the failed attempt is on the job.
        waiting = site.wait_for_jobs(
            ids,
            lambda rows: any(j.dispatch_error for j in rows.values()),
            timeout=60,
            what="no dispatch failure recorded while Prefect was down",
        )
        assert all(j.dispatch_pending and j.flow_run_id is None for j in waiting.values())
        refused = [i for i, j in waiting.items() if j.dispatch_error]
    _assert_done(site, ids)
    assert sorted(len(r) for r in site.settled_flow_runs(ids).values()) == [1, 1, 1]
    after = site.jobs(ids)
    for job_id in refused:  # failed while down, then succeeded: one more attempt, error cleared
        job = after[job_id]
        assert job.dispatch_attempts > waiting[job_id].dispatch_attempts, job
        assert job.dispatch_error is None and job.flow_run_id is not None


def test_s3_throttling_and_internal_errors_are_retried(site: Site) -> None:
    assert site.s3 is not None
    served = site.s3.faults_served
    ids = [site.deliver(f"FAULT-S3-{n}", 2200 + n).json()["jobId"] for n in range(3)]
    site.wait_for_status(ids[0], STARTED, timeout=180)
    with site.s3.faults(6.0):
        pass
    _assert_done(site, ids)
    assert site.s3.faults_served - served >= 5  # the window really caught requests
    attempts = [row.attempts for i in ids for row in _steps(site, i).values()]
    assert max(attempts) >= 2  # at least one step failed for good in boto3, then retried
    objects = site.objects("assets/")
    for job in site.jobs(ids).values():
        assert sum(job.sha256 in key for key in objects) == 26


def test_a_database_restart_mid_run_is_ridden_out(site: Site) -> None:
    assert site.jobs_db is not None and site.prefect_db is not None
    ids = [site.deliver(f"FAULT-DB-{n}", 2300 + n).json()["jobId"] for n in range(2)]

    begun = threading.Event()

    def running() -> bool:
        if site.jobs(ids[:1])[ids[0]].status in STARTED:
            begun.set()
        return begun.is_set()

    # Both databases of the site live on one PostgreSQL server: a restart takes both down.
    # Only the first outage asks the jobs database; the second waits for its answer. Both
    # asking raced: the first outage could cut the session the second was asking through.
    outages = [
        start_outage(site.jobs_db, 5.0, when=running),
        start_outage(site.prefect_db, 5.0, when=begun.is_set),
    ]
    records = [o.join(timeout=120) for o in outages]
    assert records[0].terminated > 0  # sessions of the pipeline were cut
    _assert_done(site, ids)
    runs = site.settled_flow_runs(ids)
    assert Counter(len(r) for r in runs.values()) == Counter({1: 2})
    assert {r[0].state.type.value for r in runs.values()} == {"COMPLETED"}
    logs = site.run_logs([str(r[0].id) for r in runs.values()])
    assert any("database unavailable during" in message for message in logs), logs[:5]

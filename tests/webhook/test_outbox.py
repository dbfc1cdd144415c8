"""The outbox functions in ``core.jobs`` on real SQLite and real PostgreSQL."""

from __future__ import annotations

import threading
import uuid
from datetime import timedelta

from sqlmodel import Session, select

from core import jobs
from core.db import get_engine, session_scope, upgrade_schema
from core.schemas import ImageJobSpec
from core.sealed import source_of
from core.tables import Job, JobStatus, utcnow
from tests.helpers.postgres import temporary_database


def _spec(n: int, **kw: object) -> ImageJobSpec:
    base: dict[str, object] = {
        "sku": f"SKU-{n}",
        "image_url": f"https://cdn.example/{n}.jpg",
        "sha256": f"{n:064x}",
    }
    return ImageJobSpec(**{**base, **kw})


def test_enqueue_inserts_once_and_marks_the_job_waiting(db_url: str) -> None:
    with session_scope(db_url) as s:
        first = jobs.enqueue_job(s, spec=_spec(1))
    with session_scope(db_url) as s:
        again = jobs.enqueue_job(s, spec=_spec(1))
        cli_job, _ = jobs.get_or_create_job(s, spec=_spec(2))
    job_id = first.job_id
    assert first == jobs.Enqueued(job_id, "created", "NEW")
    assert again == jobs.Enqueued(job_id, "duplicate", "NEW")
    with Session(get_engine(db_url)) as s:
        job = s.get(Job, job_id)
        assert job is not None and job.dispatch_pending and job.dispatch_attempts == 0
        assert job.created_at is not None and job.cost_usd == 0.0
        assert jobs.count_pending_dispatch(s) == 1  # the CLI's job is not waiting
        assert not s.get(Job, cli_job.id).dispatch_pending  # type: ignore[union-attr]


def test_racing_enqueues_end_on_one_row(db_url: str) -> None:
    results: list[jobs.Enqueued] = []
    barrier = threading.Barrier(8)

    def enqueue() -> None:
        barrier.wait()
        with session_scope(db_url) as s:
            results.append(jobs.enqueue_job(s, spec=_spec(3)))

    threads = [threading.Thread(target=enqueue) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({r.job_id for r in results}) == 1
    assert sorted(r.outcome for r in results) == ["created"] + ["duplicate"] * 7
    with Session(get_engine(db_url)) as s:
        assert len(s.exec(select(Job)).all()) == 1


def _failed(db_url: str, n: int) -> uuid.UUID:
    """A job the webhook accepted, dispatched, whose run then failed."""
    with session_scope(db_url) as s:
        job_id = jobs.enqueue_job(s, spec=_spec(n)).job_id
        jobs.mark_waiting_dispatched(s, job_ids=[job_id], flow_run_id="run-1")
        jobs.fail_job(s, job_id=job_id, step="download", error_type="InputError", message="404")
    return job_id


def test_a_failed_job_delivered_again_is_queued_with_the_url_it_carries(db_url: str) -> None:
    job_id = _failed(db_url, 30)
    fixed = _spec(30, image_url="https://cdn.example/30-fixed.jpg?token=t")
    with session_scope(db_url) as s:
        assert jobs.enqueue_job(s, spec=fixed) == jobs.Enqueued(job_id, "requeued", "NEW")
    with session_scope(db_url) as s:  # the attempt is queued: again is a duplicate
        assert jobs.enqueue_job(s, spec=_spec(30)) == jobs.Enqueued(job_id, "duplicate", "NEW")
    with Session(get_engine(db_url)) as s:
        job = s.get(Job, job_id)
        assert job is not None and source_of(job) == fixed.image_url
        assert job.source_url == "https://cdn.example/30-fixed.jpg?token=***"
        assert job.status == JobStatus.NEW and job.error is None and job.error_step is None
        assert job.dispatch_pending and job.dispatch_attempts == 0 and job.flow_run_id is None
        assert job.redeliveries == 1 and job.recoveries == 0 and job.finished_at is None
        assert jobs.claim_next_dispatch(s) is not None


def test_a_job_that_did_not_fail_stays_a_duplicate(db_url: str) -> None:
    with session_scope(db_url) as s:
        job_id = jobs.enqueue_job(s, spec=_spec(31)).job_id
        jobs.mark_waiting_dispatched(s, job_ids=[job_id], flow_run_id="run-1")
        jobs.finish_job(s, job_id=job_id, manifest_key="manifests/x.json")
    other_url = _spec(31, image_url="https://cdn.example/other.jpg")
    with session_scope(db_url) as s:
        assert jobs.enqueue_job(s, spec=other_url) == jobs.Enqueued(job_id, "duplicate", "DONE")
    with Session(get_engine(db_url)) as s:
        job = s.get(Job, job_id)
        assert job is not None and job.source_url == _spec(31).image_url
        assert not job.dispatch_pending and job.redeliveries == 0


def test_racing_redeliveries_of_a_failed_job_queue_one_attempt(db_url: str) -> None:
    job_id = _failed(db_url, 32)
    results: list[jobs.Enqueued] = []
    barrier = threading.Barrier(6)

    def enqueue(n: int) -> None:
        barrier.wait()
        with session_scope(db_url) as s:
            spec = _spec(32, image_url=f"https://cdn.example/32-{n}.jpg")
            results.append(jobs.enqueue_job(s, spec=spec))

    threads = [threading.Thread(target=enqueue, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(r.outcome for r in results) == ["duplicate"] * 5 + ["requeued"]
    assert {r.status for r in results} == {"NEW"}
    with Session(get_engine(db_url)) as s:
        job = s.get(Job, job_id)
        assert job is not None and job.redeliveries == 1 and job.dispatch_pending


def test_claim_oldest_due_first_then_record(db_url: str) -> None:
    ids = []
    for n in range(3):
        with session_scope(db_url) as s:
            ids.append(jobs.enqueue_job(s, spec=_spec(10 + n)).job_id)
    later = utcnow() + timedelta(minutes=5)
    with session_scope(db_url) as s:
        jobs.mark_dispatch_failed(s, job_id=ids[0], error="ValueError: refused", retry_at=later)
    with session_scope(db_url) as s:
        claimed = jobs.claim_next_dispatch(s)
        assert claimed is not None and claimed.id == ids[1]
        jobs.mark_waiting_dispatched(s, job_ids=[claimed.id], flow_run_id="run-1")
    with session_scope(db_url) as s:
        assert jobs.claim_next_dispatch(s).id == ids[2]  # type: ignore[union-attr]
        assert jobs.claim_next_dispatch(s, now=later + timedelta(seconds=1)).id == ids[0]  # type: ignore[union-attr]
        done = s.get(Job, ids[1])
        assert done is not None and not done.dispatch_pending and done.flow_run_id == "run-1"
        assert done.dispatched_at is not None and done.status == JobStatus.NEW
        waiting = s.get(Job, ids[0])
        assert waiting is not None and waiting.dispatch_attempts == 1
        assert waiting.dispatch_error == "ValueError: refused"
        assert jobs.count_pending_dispatch(s) == 2


def test_postgres_dispatchers_skip_a_locked_job(tmp_path) -> None:
    with temporary_database() as url:
        upgrade_schema(url)
        for n in range(2):
            with session_scope(url) as s:
                jobs.enqueue_job(s, spec=_spec(20 + n))
        engine = get_engine(url)
        with Session(engine) as first, Session(engine) as second, Session(engine) as third:
            a = jobs.claim_next_dispatch(first)
            b = jobs.claim_next_dispatch(second)
            assert a is not None and b is not None and a.id != b.id
            assert jobs.claim_next_dispatch(third) is None

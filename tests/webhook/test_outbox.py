"""The outbox functions in ``core.jobs`` on real SQLite and real PostgreSQL."""

from __future__ import annotations

import threading
import uuid
from datetime import timedelta

from sqlmodel import Session, select

from core import jobs
from core.db import get_engine, session_scope, upgrade_schema
from core.schemas import ImageJobSpec
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
        job_id, created, status = jobs.enqueue_job(s, spec=_spec(1))
    with session_scope(db_url) as s:
        again = jobs.enqueue_job(s, spec=_spec(1))
        cli_job, _ = jobs.get_or_create_job(s, spec=_spec(2))
    assert created and status == "NEW" and again == (job_id, False, "NEW")
    with Session(get_engine(db_url)) as s:
        job = s.get(Job, job_id)
        assert job is not None and job.dispatch_pending and job.dispatch_attempts == 0
        assert job.created_at is not None and job.cost_usd == 0.0
        assert jobs.count_pending_dispatch(s) == 1  # the CLI's job is not waiting
        assert not s.get(Job, cli_job.id).dispatch_pending  # type: ignore[union-attr]


def test_racing_enqueues_end_on_one_row(db_url: str) -> None:
    results: list[tuple[uuid.UUID, bool, str]] = []
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
    assert len({r[0] for r in results}) == 1 and sum(r[1] for r in results) == 1
    with Session(get_engine(db_url)) as s:
        assert len(s.exec(select(Job)).all()) == 1


def test_claim_oldest_due_first_then_record(db_url: str) -> None:
    ids = []
    for n in range(3):
        with session_scope(db_url) as s:
            ids.append(jobs.enqueue_job(s, spec=_spec(10 + n))[0])
    later = utcnow() + timedelta(minutes=5)
    with session_scope(db_url) as s:
        jobs.mark_dispatch_failed(s, job_id=ids[0], error="ValueError: refused", retry_at=later)
    with session_scope(db_url) as s:
        claimed = jobs.claim_next_dispatch(s)
        assert claimed is not None and claimed.id == ids[1]
        jobs.mark_dispatched(s, job_id=claimed.id, flow_run_id="run-1")
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

"""Job-state functions on real SQLite and real PostgreSQL."""

from __future__ import annotations

import threading
import uuid

import pytest
from sqlmodel import select

from core import jobs
from core.db import session_scope, upgrade_schema
from core.schemas import ImageJobSpec
from core.tables import Asset, AssetKind, Job, JobStatus, JobStep, Step, StepState

SHA = "a" * 64


def _spec(**kw: object) -> ImageJobSpec:
    base: dict[str, object] = {
        "sku": "SKU-1",
        "image_url": "https://cdn.example/a.jpg",
        "sha256": SHA,
    }
    return ImageJobSpec(**{**base, **kw})


def test_same_image_is_one_job(db_url: str) -> None:
    with session_scope(db_url) as s:
        first, created = jobs.get_or_create_job(s, spec=_spec())
    with session_scope(db_url) as s:
        again, created_again = jobs.get_or_create_job(s, spec=_spec(sha256=SHA.upper()))
        other, other_created = jobs.get_or_create_job(s, spec=_spec(theme="white"))
    assert created and not created_again and other_created
    assert again.id == first.id and other.id != first.id


def test_racing_inserts_end_on_one_row(db_url: str) -> None:
    ids: list[uuid.UUID] = []
    barrier = threading.Barrier(8)

    def insert() -> None:
        barrier.wait()
        with session_scope(db_url) as s:
            job, _ = jobs.get_or_create_job(s, spec=_spec(sku="RACE"))
            ids.append(job.id)

    threads = [threading.Thread(target=insert) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(ids)) == 1
    with session_scope(db_url) as s:
        assert len(s.exec(select(Job).where(Job.sku == "RACE")).all()) == 1


def test_status_only_moves_forward(db_url: str) -> None:
    with session_scope(db_url) as s:
        job, _ = jobs.get_or_create_job(s, spec=_spec())
        jobs.advance_status(s, job_id=job.id, status=JobStatus.COMPOSITED)
        jobs.advance_status(s, job_id=job.id, status=JobStatus.BG_REMOVED)
        assert job.status == JobStatus.COMPOSITED
        jobs.fail_job(s, job_id=job.id, step="derivatives", error_type="X", message="boom")
        jobs.advance_status(s, job_id=job.id, status=JobStatus.DERIVATIVES)
        assert job.status == JobStatus.FAILED
        jobs.start_job(s, job_id=job.id)
        assert job.status == JobStatus.NEW and job.error is None


def test_steps_cost_and_assets(db_url: str) -> None:
    with session_scope(db_url) as s:
        job, _ = jobs.get_or_create_job(s, spec=_spec())
        jobs.step_started(s, job_id=job.id, step=Step.REMOVE_BACKGROUND, attempt=1)
        jobs.step_failed(
            s,
            job_id=job.id,
            step=Step.REMOVE_BACKGROUND,
            attempt=1,
            error="ProviderUnavailable: 503",
            final=False,
        )
        jobs.step_started(s, job_id=job.id, step=Step.REMOVE_BACKGROUND, attempt=2)
        jobs.step_finished(
            s,
            job_id=job.id,
            step=Step.REMOVE_BACKGROUND,
            duration_ms=12.34,
            cost_usd=0.002,
            provider="freepik",
        )
        jobs.step_finished(
            s, job_id=job.id, step=Step.COMPOSITE, variant=2, duration_ms=5, cost_usd=0.001
        )
        record = jobs.AssetRecord(
            kind=AssetKind.CUTOUT,
            key="cutouts/SKU-1/x.png",
            content_type="image/png",
            bytes=10,
            width=4,
            height=5,
        )
        jobs.record_assets(s, job_id=job.id, assets=[record])
        jobs.record_assets(s, job_id=job.id, assets=[record])  # idempotent
    with session_scope(db_url) as s:
        view = jobs.job_view(s, job_id=job.id)
        assert view is not None
        row = s.exec(select(JobStep).where(JobStep.step == Step.REMOVE_BACKGROUND)).one()
        assert row.state == StepState.COMPLETED and row.attempts == 2 and row.error is None
        assert view.cost_usd == pytest.approx(0.003)
        assert [st.step for st in view.steps] == ["remove_background", "composite"]
        assert len(s.exec(select(Asset)).all()) == 1


def test_schema_upgrade_is_idempotent_and_versioned(db_url: str) -> None:
    from core.db import reset_engines

    reset_engines()
    assert upgrade_schema(db_url) == upgrade_schema(db_url) == "0007"

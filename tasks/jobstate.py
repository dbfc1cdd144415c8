"""Job-level bookkeeping the flow does itself: open the job, and record how it ended.

Hooks run client-side and are best effort, so the flow writes its final status directly. Each
function is one transaction, retried whole while the database is unreachable (a restart must
not fail the run): ``_runtime.run_in_db``.
"""

from __future__ import annotations

import uuid
from functools import partial
from urllib.parse import urlsplit

from sqlmodel import Session, select

from core import jobs
from core.schemas import ImageJobSpec, JobView
from core.tables import AssetKind, JobStep, Step, StepState
from core.urls import redact_url
from tasks._hooks import error_text
from tasks._runtime import describe_stored, run_in_db
from tasks.download import SourceRef

__all__ = ["fail", "finish", "open_job", "record_prefetch", "view"]


def open_job(
    spec: ImageJobSpec, *, flow_run_id: str | None, job_id: str | None = None, force: bool = False
) -> str:
    """Upsert the job for ``spec`` (or load ``job_id``) and mark it started; returns its id."""

    def open_(session: Session) -> str:
        if job_id is not None:
            job = jobs.get_job(session, job_id=uuid.UUID(job_id))
            if job is None:
                raise LookupError(f"no job {job_id}")
        else:
            job, _created = jobs.get_or_create_job(session, spec=spec)
        if force:
            jobs.reset_for_rerun(session, job_id=job.id)
        jobs.start_job(session, job_id=job.id, flow_run_id=flow_run_id)
        return str(job.id)

    return run_in_db(open_, what="open job")


def record_prefetch(job_id: str, ref: SourceRef, ms: float, source_url: str) -> None:
    """Record the download that ran before the job existed (sha256 was not known)."""
    asset = describe_stored(ref.key, AssetKind.ORIGINAL)
    job = uuid.UUID(job_id)

    def record(session: Session) -> None:
        jobs.step_started(session, job_id=job, step=Step.DOWNLOAD)
        jobs.step_finished(
            session,
            job_id=job,
            step=Step.DOWNLOAD,
            skipped=ref.skipped,
            duration_ms=ms,
            provider=urlsplit(source_url).scheme or "file",
            details={"bytes": ref.bytes, "source": redact_url(source_url)},
        )
        if asset is not None:
            jobs.record_assets(session, job_id=job, assets=[asset])

    run_in_db(record, what="record prefetch")


def _failed_step(session: Session, job_id: uuid.UUID) -> str:
    query = select(JobStep).where(JobStep.job_id == job_id, JobStep.state == StepState.FAILED)
    rows = session.exec(query).all()
    order = list(Step)
    rows = sorted(rows, key=lambda row: order.index(Step(row.step)))
    return rows[0].step if rows else "flow"


def fail(job_id: str, exc: BaseException) -> None:
    """Mark the job FAILED with the step that failed and the error."""
    job = uuid.UUID(job_id)

    def record(session: Session) -> None:
        jobs.fail_job(
            session,
            job_id=job,
            step=_failed_step(session, job),
            error_type=type(exc).__name__,
            message=error_text(exc),
        )

    run_in_db(record, what="fail job")


def finish(job_id: str, manifest_key: str) -> None:
    """Mark the job DONE."""
    done = partial(jobs.finish_job, job_id=uuid.UUID(job_id), manifest_key=manifest_key)
    run_in_db(done, what="finish job")


def view(job_id: str) -> JobView:
    """The job with its steps and assets."""
    result = run_in_db(partial(jobs.job_view, job_id=uuid.UUID(job_id)), what="job view")
    if result is None:
        raise LookupError(f"no job {job_id}")
    return result

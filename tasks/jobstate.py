"""Job-level bookkeeping the flow does itself: open the job, and record how it ended.

Hooks run client-side and are best effort, so the flow writes its final status directly. Each
function is one transaction, retried whole while the database is unreachable (a restart must
not fail the run): ``_runtime.run_in_db``.
"""

from __future__ import annotations

import uuid
from functools import partial
from urllib.parse import urlsplit

from pydantic import SecretStr
from sqlmodel import Session, select

from core import jobs, review
from core.context import JobContext
from core.schemas import ImageJobSpec, JobView, QualityReport
from core.sealed import source_of
from core.settings import get_settings
from core.tables import AssetKind, JobStep, Step, StepState
from core.themes import Theme, resolve_theme
from tasks._hooks import error_text
from tasks._runtime import describe_stored, run_in_db
from tasks.download import SourceRef

__all__ = [
    "fail",
    "finish",
    "hold_for_review",
    "open_job",
    "record_decision",
    "record_prefetch",
    "view",
]


def open_job(
    request: ImageJobSpec | uuid.UUID,
    *,
    theme: Theme | None = None,
    flow_run_id: str | None,
    force: bool = False,
    rerender: bool = False,
    segmenter: str | None = None,
) -> JobContext:
    """Open the job and mark it started; returns the context every step of the run gets.

    Args:
        request: an image (its job is found or created; its URL is fetched) or the id of a job
            the webhook created (its stored URL is fetched).
        theme: the theme, already resolved; looked up by the job's theme name when omitted.
        flow_run_id: the run doing the work.
        force: redo every step; ``rerender``: redo backgrounds, composites and derivatives.
        segmenter: this run's background remover instead of the configured chain.

    Raises:
        LookupError: no job with that id.
        InputError: the job's theme is unknown.
    """

    def open_(session: Session) -> JobContext:
        if isinstance(request, uuid.UUID):
            job = jobs.get_job(session, job_id=request)
            if job is None:
                raise LookupError(f"no job {request}")
            source = source_of(job)
        else:
            job, _created = jobs.get_or_create_job(session, spec=request)
            source = request.image_url
        resolved = theme or resolve_theme(job.theme, get_settings().themes_file)
        if force:
            jobs.reset_for_rerun(session, job_id=job.id)
        jobs.start_job(session, job_id=job.id, flow_run_id=flow_run_id)
        return JobContext(
            job_id=job.id,
            sku=job.sku,
            sha256=job.sha256,
            theme=resolved,
            source=SecretStr(source),
            force=force,
            rerender=rerender or force,
            segmenter=segmenter,
        )

    return run_in_db(open_, what="open job")


def record_prefetch(ctx: JobContext, ref: SourceRef, ms: float) -> None:
    """Record the download that ran before the job existed (sha256 was not known)."""
    asset = describe_stored(ref.key, AssetKind.ORIGINAL)
    job = ctx.job_id

    def record(session: Session) -> None:
        jobs.step_started(session, job_id=job, step=Step.DOWNLOAD)
        jobs.step_finished(
            session,
            job_id=job,
            step=Step.DOWNLOAD,
            skipped=ref.skipped,
            duration_ms=ms,
            provider=urlsplit(ctx.source_url).scheme or "file",
            details={"bytes": ref.bytes, "source": ctx.shown_source},
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


def fail(job: uuid.UUID, exc: BaseException) -> None:
    """Mark the job FAILED with the step that failed and the error."""

    def record(session: Session) -> None:
        jobs.fail_job(
            session,
            job_id=job,
            step=_failed_step(session, job),
            error_type=type(exc).__name__,
            message=error_text(exc),
        )

    run_in_db(record, what="fail job")


def hold_for_review(ctx: JobContext, report: QualityReport) -> bool:
    """Hold the job in NEEDS_REVIEW when its verdict says so (``PACKSHOT_REVIEW``); True if held.

    A job a person already approved is not held again: this run publishes it.
    """
    mode = get_settings().review

    def decide(session: Session) -> bool:
        if review.approved(session, job_id=ctx.job_id) or not review.should_hold(report, mode):
            return False
        review.hold(session, job_id=ctx.job_id)
        return True

    return run_in_db(decide, what="review hold")


def record_decision(ctx: JobContext, decision: str, by: str, reason: str | None) -> bool:
    """Record a decision made in the Prefect UI on the held job; True when it approves.

    A rejection without a reason is recorded with the reason "(no reason given)".
    """
    verdict: review.Decision = "approve" if decision == "approve" else "reject"
    why = (reason or "").strip() or (None if verdict == "approve" else "(no reason given)")

    def decide(session: Session) -> bool:
        review.decide(session, job_id=ctx.job_id, decision=verdict, by=by, reason=why)
        return verdict == "approve"

    return run_in_db(decide, what="review decision")


def finish(job: uuid.UUID, manifest_key: str) -> None:
    """Mark the job DONE."""
    done = partial(jobs.finish_job, job_id=job, manifest_key=manifest_key)
    run_in_db(done, what="finish job")


def view(job: uuid.UUID) -> JobView:
    """The job with its steps and assets."""
    result = run_in_db(partial(jobs.job_view, job_id=job), what="job view")
    if result is None:
        raise LookupError(f"no job {job}")
    return result

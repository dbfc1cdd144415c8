"""The review page's data and decisions: held jobs oldest first, approve, reject, redo.

Decisions go through ``core.review.decide`` (a row lock: of two operators deciding at once one
wins, the other is told the job no longer waits), so the dashboard, ``packshot review`` and the
Prefect UI agree. An approval starts the publishing run with ``flows.trigger.after_decision``,
and only once Prefect answers: a job is never left approved with no run to publish it.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime

import streamlit as st
from sqlalchemy import ColumnElement, func
from sqlmodel import col, select

from core import jobs, review
from core.schemas import QualityReport, parse_quality
from core.settings import Settings
from core.tables import Job, JobStatus
from dashboard.actions import end_rejected, prefect_problem, publish_approved, rerun_job
from dashboard.models import AssetRow, JobDetail
from dashboard.queries import LIST_TTL_S, job_summary, reading
from flows.trigger import JobRef

__all__ = [
    "HeldJob",
    "Outcome",
    "Queue",
    "approve",
    "held",
    "redo",
    "reject",
    "waiting_count",
]

_log = logging.getLogger("packshot.dashboard")


@dataclass(frozen=True)
class HeldJob:
    """A job waiting for a decision, with its files (no steps) and its quality report."""

    detail: JobDetail
    quality: QualityReport | None
    held_at: datetime | None


@dataclass(frozen=True)
class Queue:
    """The oldest held jobs, and how many wait in all."""

    jobs: tuple[HeldJob, ...]
    total: int


@dataclass(frozen=True)
class Outcome:
    """What became of one action on one job, in words for the page."""

    job_id: uuid.UUID
    sku: str
    ok: bool
    text: str
    flow_run_id: str | None = None


def _waiting() -> list[ColumnElement[bool]]:
    return [col(Job.status) == JobStatus.NEEDS_REVIEW, col(Job.review_decision).is_(None)]


@st.cache_data(ttl=LIST_TTL_S, show_spinner=False, max_entries=16)
def held(database_url: str, limit: int) -> Queue:
    """The ``limit`` oldest jobs waiting for review (``core.review.held_jobs``) and the total."""
    with reading(database_url) as session:
        total = session.exec(select(func.count()).select_from(Job).where(*_waiting())).one()
        rows = []
        for job in review.held_jobs(session, limit=limit):
            assets = jobs.list_assets(session, job_id=job.id)
            summary = job_summary(job)  # timestamps in UTC whatever the database returns
            detail = JobDetail(
                job=summary,
                steps=(),
                assets=tuple(AssetRow.model_validate(row) for row in assets),
            )
            rows.append(HeldJob(detail, parse_quality(job.quality), summary.finished_at))
    return Queue(jobs=tuple(rows), total=total)


@st.cache_data(ttl=LIST_TTL_S, show_spinner=False, max_entries=16)
def waiting_count(database_url: str) -> int:
    """How many jobs wait for a decision (the overview's link)."""
    with reading(database_url) as session:
        return session.exec(select(func.count()).select_from(Job).where(*_waiting())).one()


def _decide(
    database_url: str,
    job_id: uuid.UUID,
    decision: review.Decision,
    by: str,
    reason: str | None,
) -> JobRef | str:
    """Record the decision; the job as a run needs it, or why the decision was refused."""
    try:
        job = review.decide_now(
            database_url, job_id=job_id, decision=decision, by=by, reason=reason
        )
        ref = JobRef.model_validate(job)
    except review.ReviewError as exc:
        return str(exc)
    finally:
        held.clear()
        waiting_count.clear()
    _log.info("job %s %sd in the dashboard by %r", job_id, decision, by)
    return ref


def approve(database_url: str, job: HeldJob, *, by: str, settings: Settings) -> Outcome:
    """Approve ``job`` as ``by`` and start the run that publishes it."""
    summary = job.detail.job
    problem = prefect_problem(settings)
    if problem:
        return Outcome(summary.id, summary.sku, False, f"Not approved: {problem}")
    decided = _decide(database_url, summary.id, "approve", by, None)
    if isinstance(decided, str):
        return Outcome(summary.id, summary.sku, False, f"Not approved: {decided}")
    started = publish_approved(decided, settings)
    if started.error:
        return Outcome(
            summary.id,
            summary.sku,
            False,
            f"Approved, but publishing did not start: {started.error} "
            "Re-run the job from its page to publish it.",
        )
    return Outcome(
        summary.id, summary.sku, True, "Approved; publishing", flow_run_id=started.flow_run_id
    )


def reject(database_url: str, job: HeldJob, *, by: str, reason: str, settings: Settings) -> Outcome:
    """Reject ``job`` as ``by``; a reason is required (it is kept on the job)."""
    summary = job.detail.job
    decided = _decide(database_url, summary.id, "reject", by, reason)
    if isinstance(decided, str):
        return Outcome(summary.id, summary.sku, False, f"Not rejected: {decided}")
    end_rejected(decided, settings)
    return Outcome(summary.id, summary.sku, True, "Rejected: nothing will be published")


def redo(job: HeldJob, *, by: str, settings: Settings, segmenter: str | None = None) -> Outcome:
    """Run the job again with every step redone (the cut-out by ``segmenter`` when given);
    its new outputs are judged again."""
    summary = job.detail.job
    started = rerun_job(job.detail, settings, force=True, segmenter=segmenter)
    held.clear()
    if started.error:
        return Outcome(summary.id, summary.sku, False, f"Redo not started: {started.error}")
    _log.info("job %s redone (%s) from the review page by %r", summary.id, segmenter, by)
    what = (
        f"Redoing every step, the cut-out with {segmenter}" if segmenter else "Redoing every step"
    )
    return Outcome(summary.id, summary.sku, True, what, flow_run_id=started.flow_run_id)

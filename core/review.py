"""The review queue on the job table: quality verdicts, held jobs and the decisions on them.

A job whose quality verdict holds it (``PACKSHOT_REVIEW``) waits in ``NEEDS_REVIEW`` with its
manifest written and nothing published. A person approves it (a run continues it to
``SHOPIFY_PUSH`` → ``DONE``) or rejects it (``REJECTED``, final); who decided, when and why is
kept on the job. Every function here works inside the caller's transaction.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Literal

from sqlmodel import Session, col, select

from core.db import session_scope
from core.errors import InputError
from core.schemas import QualityReport
from core.tables import Job, JobStatus
from core.tables import utcnow as _now

__all__ = [
    "Decision",
    "ReviewError",
    "approved",
    "decide",
    "decide_now",
    "held_jobs",
    "hold",
    "set_quality",
    "should_hold",
]

Decision = Literal["approve", "reject"]


class ReviewError(InputError):
    """A decision that cannot be taken: no such job, or the job is not waiting for review."""


def should_hold(report: QualityReport, mode: str) -> bool:
    """Whether a job with ``report`` waits for a person under ``PACKSHOT_REVIEW=mode``."""
    return mode == "always" or (mode == "auto" and report.verdict == "review")


def set_quality(session: Session, *, job_id: uuid.UUID, report: QualityReport) -> None:
    """Store the job's quality object (the last quality step's)."""
    job = _require(session, job_id)
    job.quality = report.to_column()
    job.updated_at = _now()


def approved(session: Session, *, job_id: uuid.UUID) -> bool:
    """True when a person approved the job since it was last judged: a run may publish it.

    (The run continuing an approved job has already moved it on from NEEDS_REVIEW; a forced
    re-run forgets the decision, so the new outputs are judged again.)
    """
    job = _require(session, job_id)
    return job.review_decision == "approved"


def hold(session: Session, *, job_id: uuid.UUID) -> Job:
    """Hold the job in ``NEEDS_REVIEW``: its time so far is recorded, nothing is published."""
    job = _require(session, job_id)
    job.status = JobStatus.NEEDS_REVIEW
    job.review_decision = job.review_by = job.review_at = job.review_reason = None
    job.finished_at = _now()
    job.updated_at = job.finished_at
    return job


def decide(
    session: Session,
    *,
    job_id: uuid.UUID,
    decision: Decision,
    by: str,
    reason: str | None = None,
) -> Job:
    """Record a person's decision on a held job.

    Approval keeps the job in ``NEEDS_REVIEW`` until a run has published it; rejection ends it
    in ``REJECTED``. The row is locked, so of two people deciding at once one wins and the
    other is told the job is no longer waiting.

    Raises:
        ReviewError: no such job, the job is not waiting for review, or a rejection without
            a reason.
    """
    if decision == "reject" and not (reason and reason.strip()):
        raise ReviewError("a rejection needs a reason")
    query = select(Job).where(Job.id == job_id).with_for_update()
    job = session.exec(query).first()
    if job is None:
        raise ReviewError(f"no job {job_id}")
    if job.status != JobStatus.NEEDS_REVIEW or job.review_decision is not None:
        state = job.review_decision or job.status
        raise ReviewError(f"job {job_id} is not waiting for review (it is {state})")
    job.review_decision = "approved" if decision == "approve" else "rejected"
    job.review_by = by.strip()[:128] or "unknown"
    job.review_at = _now()
    job.review_reason = reason.strip()[:2000] if reason else None
    if decision == "reject":
        job.status = JobStatus.REJECTED
        job.finished_at = job.review_at
    job.updated_at = job.review_at
    return job


def decide_now(
    database_url: str,
    *,
    job_id: uuid.UUID,
    decision: Decision,
    by: str,
    reason: str | None = None,
) -> Job:
    """``decide`` in a transaction of its own, committed; returns the job row, detached.

    The one way the CLI and the dashboard record a person's decision.

    Raises:
        ReviewError: as ``decide``.
    """
    with session_scope(database_url) as session:
        job = decide(session, job_id=job_id, decision=decision, by=by, reason=reason)
        session.flush()
        session.expunge(job)
        return job


def held_jobs(session: Session, *, limit: int = 500) -> Sequence[Job]:
    """Jobs waiting for a decision, oldest first."""
    query = (
        select(Job)
        .where(Job.status == JobStatus.NEEDS_REVIEW, col(Job.review_decision).is_(None))
        .order_by(col(Job.finished_at), col(Job.created_at))
        .limit(limit)
    )
    return session.exec(query).all()


def _require(session: Session, job_id: uuid.UUID) -> Job:
    job = session.get(Job, job_id)
    if job is None:
        raise LookupError(f"no job {job_id}")
    return job

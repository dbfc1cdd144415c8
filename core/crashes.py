"""Jobs whose flow run crashed: put them back in the outbox, or fail them for good.

A flow run crashes when its process or machine dies (SIGKILL, out of memory, a lost host).
Nothing in that process can record it, so the webhook's recovery loop reads the run's state
from Prefect and calls these functions. A job goes back to the outbox at most
``PACKSHOT_CRASH_RERUNS`` times; the re-run skips every step whose outputs are stored.
"""

from __future__ import annotations

import uuid

from sqlmodel import Session, col, select

from core.tables import SETTLED_STATUSES, Job, JobStatus, JobStep, Step, StepState
from core.tables import utcnow as _now

__all__ = ["fail_crashed", "in_flight", "requeue_crashed"]

_TERMINAL = SETTLED_STATUSES


def in_flight(session: Session, *, limit: int = 500) -> list[Job]:
    """Jobs handed to a flow run that have not ended: the ones whose run may have crashed."""
    query = (
        select(Job)
        .where(
            col(Job.status).not_in([s.value for s in _TERMINAL]),
            col(Job.flow_run_id).is_not(None),
            col(Job.dispatch_pending).is_(False),
        )
        .order_by(col(Job.updated_at))
        .limit(limit)
    )
    return list(session.exec(query).all())


def _locked_if_current(session: Session, job_id: uuid.UUID, flow_run_id: str) -> Job | None:
    """The job, locked, if it still waits on ``flow_run_id`` (another replica may have acted)."""
    query = select(Job).where(Job.id == job_id).with_for_update(skip_locked=True)
    job = session.exec(query).first()
    if job is None or job.flow_run_id != flow_run_id or job.dispatch_pending:
        return None
    if job.status in _TERMINAL:
        return None
    return job


def requeue_crashed(session: Session, *, job_id: uuid.UUID, flow_run_id: str, reason: str) -> bool:
    """Send the job back to the outbox for another run; False if it was no longer current."""
    job = _locked_if_current(session, job_id, flow_run_id)
    if job is None:
        return False
    job.recoveries += 1
    job.dispatch_pending = True
    job.dispatch_next_at = None
    job.dispatch_error = reason[:2000]
    job.updated_at = _now()
    return True


def _running_steps(session: Session, job_id: uuid.UUID) -> list[JobStep]:
    """Step rows left RUNNING by the dead process, in pipeline order."""
    rows = session.exec(
        select(JobStep).where(JobStep.job_id == job_id, JobStep.state == StepState.RUNNING)
    ).all()
    order = list(Step)
    return sorted(rows, key=lambda row: order.index(Step(row.step)))


def fail_crashed(
    session: Session, *, job_id: uuid.UUID, flow_run_id: str, error_type: str, message: str
) -> bool:
    """Mark the job FAILED at the step that was running; False if it was no longer current."""
    job = _locked_if_current(session, job_id, flow_run_id)
    if job is None:
        return False
    running = _running_steps(session, job_id)
    for row in running:
        row.state = StepState.FAILED
        row.error = message[:2000]
        row.finished_at = _now()
    job.status = JobStatus.FAILED
    job.error_step = running[0].step if running else "flow"
    job.error_type = error_type
    job.error = message[:4000]
    job.finished_at = job.updated_at = _now()
    return True

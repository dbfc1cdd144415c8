"""Job-state functions: the one place that writes Job, JobStep and Asset rows.

Every function takes the session as a keyword argument and leaves committing to the caller's
``session_scope``. Status only moves forward, so late or repeated writes (retries, hooks that
fire twice, mapped tasks finishing out of order) can never move a job backwards.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, cast

from sqlalchemy import Table, func, or_, true, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import CursorResult
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from core.schemas import AssetView, ImageJobSpec, JobView, StepView
from core.sealed import seal_source_url as _sealed
from core.tables import (
    STATUS_ORDER,
    Asset,
    AssetBase,
    AssetKind,
    Job,
    JobStatus,
    JobStep,
    RowModel,
    Step,
    StepState,
)
from core.tables import utcnow as _now

__all__ = [
    "AssetRecord",
    "Enqueued",
    "advance_status",
    "claim_dispatch",
    "claim_next_dispatch",
    "count_due_dispatch",
    "count_pending_dispatch",
    "enqueue_job",
    "fail_job",
    "finish_job",
    "get_job",
    "get_or_create_job",
    "job_view",
    "list_assets",
    "list_steps",
    "mark_dispatch_failed",
    "mark_waiting_dispatched",
    "record_assets",
    "reset_for_rerun",
    "set_flow_run",
    "set_manifest_key",
    "start_job",
    "step_failed",
    "step_finished",
    "step_started",
]


class AssetRecord(RowModel, AssetBase):
    """An asset a step stored, to record as a row: the ``Asset`` columns but ids and time."""


def get_job(session: Session, *, job_id: uuid.UUID) -> Job | None:
    """The job with ``job_id``, or None."""
    return session.get(Job, job_id)


def _find(session: Session, spec: ImageJobSpec) -> Job | None:
    query = select(Job).where(
        Job.sku == spec.sku, Job.sha256 == spec.sha256, Job.theme == spec.theme
    )
    return session.exec(query).first()


def get_or_create_job(session: Session, *, spec: ImageJobSpec) -> tuple[Job, bool]:
    """The job for (sku, sha256, theme), inserted if new; ``(job, created)``.

    The unique constraint, not a prior lookup, decides: two racing deliveries of the same
    image both end on the one row.
    """
    if spec.sha256 is None:
        raise ValueError("a job needs the image's sha256")
    existing = _find(session, spec)
    if existing is not None:
        return existing, False
    source = _sealed(spec.image_url)
    job = Job(
        sku=spec.sku,
        sha256=spec.sha256,
        theme=spec.theme,
        source_url=source.shown,
        source_secret=source.secret,
    )
    try:
        with session.begin_nested():
            session.add(job)
    except IntegrityError:
        found = _find(session, spec)
        if found is None:
            raise
        return found, False
    return job, True


@dataclass(frozen=True)
class Enqueued:
    """What a webhook delivery did to the job of its (sku, sha256, theme).

    ``outcome`` is ``created`` (a new job), ``requeued`` (the job had FAILED: a new attempt
    waits for the dispatcher) or ``duplicate`` (nothing changed); ``status`` is the job's now.
    """

    job_id: uuid.UUID
    outcome: Literal["created", "requeued", "duplicate"]
    status: str

    @property
    def queued(self) -> bool:
        """A flow run is to be created for this delivery."""
        return self.outcome != "duplicate"


def enqueue_job(session: Session, *, spec: ImageJobSpec) -> Enqueued:
    """The webhook's write for (sku, sha256, theme): insert, requeue a FAILED job, or nothing.

    A new job is inserted waiting for the dispatcher. An existing FAILED job is queued again
    with the delivery's URL (a sender that fixed the URL delivers again); any other existing
    job is returned unchanged. One ``INSERT … ON CONFLICT DO NOTHING`` lets the unique
    constraint decide, so racing deliveries end on one row, as with ``get_or_create_job``,
    at under half its CPU (no ORM object, no savepoint): the webhook answers from here.
    """
    if spec.sha256 is None:
        raise ValueError("a job needs the image's sha256")
    table: Table = Job.__table__  # type: ignore[attr-defined]
    now = _now()
    source = _sealed(spec.image_url)
    dialect = session.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    statement = (
        insert(table)
        .values(
            id=uuid.uuid4(),
            sku=spec.sku,
            sha256=spec.sha256,
            theme=spec.theme,
            source_url=source.shown,
            source_secret=source.secret,
            status=JobStatus.NEW.value,
            cost_usd=0.0,
            created_at=now,
            updated_at=now,
            dispatch_pending=True,
            dispatch_attempts=0,
        )
        .on_conflict_do_nothing(index_elements=["sku", "sha256", "theme"])
        .returning(table.c.id)
    )
    inserted = session.execute(statement).first()
    if inserted is not None:
        return Enqueued(inserted[0], "created", JobStatus.NEW.value)
    query = select(table.c.id, table.c.status).where(
        table.c.sku == spec.sku, table.c.sha256 == spec.sha256, table.c.theme == spec.theme
    )
    job_id, status = session.execute(query).one()
    if status == JobStatus.FAILED.value:
        if _requeue_failed(session, job_id, spec.image_url):
            return Enqueued(job_id, "requeued", JobStatus.NEW.value)
        status = session.execute(query).one()[1]  # a racing delivery requeued it first
    return Enqueued(job_id, "duplicate", str(status))


def _requeue_failed(session: Session, job_id: uuid.UUID, source_url: str) -> bool:
    """Queue a new attempt of the FAILED job ``job_id`` from ``source_url``.

    One conditional UPDATE: of racing deliveries only one finds the job still FAILED, so one
    attempt is queued. The attempt gets its own idempotency key (``redeliveries`` counts them,
    see ``flows.trigger.dispatch_key``) and a fresh crash-recovery budget.
    """
    source = _sealed(source_url)
    table: Table = Job.__table__  # type: ignore[attr-defined]
    statement = (
        update(table)
        .where(table.c.id == job_id, table.c.status == JobStatus.FAILED.value)
        .values(
            source_url=source.shown,
            source_secret=source.secret,
            status=JobStatus.NEW.value,
            error=None,
            error_step=None,
            error_type=None,
            finished_at=None,
            flow_run_id=None,
            dispatch_pending=True,
            dispatch_attempts=0,
            dispatch_error=None,
            dispatch_next_at=None,
            recoveries=0,
            redeliveries=table.c.redeliveries + 1,
            updated_at=_now(),
        )
    )
    result = cast("CursorResult[Any]", session.execute(statement))  # an UPDATE's result
    return result.rowcount == 1


def set_flow_run(session: Session, *, job_id: uuid.UUID, flow_run_id: str) -> None:
    """Remember which flow run works on the job."""
    job = _require(session, job_id)
    job.flow_run_id = flow_run_id
    job.updated_at = _now()


def claim_next_dispatch(session: Session, *, now: datetime | None = None) -> Job | None:
    """The oldest job waiting for its flow run whose retry time has come, or None."""
    claimed = claim_dispatch(session, limit=1, now=now)
    return claimed[0] if claimed else None


def claim_dispatch(session: Session, *, limit: int, now: datetime | None = None) -> list[Job]:
    """Up to ``limit`` jobs waiting for their flow run whose retry time has come, oldest first.

    On PostgreSQL the rows stay locked (``FOR UPDATE SKIP LOCKED``) until the session's
    transaction ends, so several dispatchers never work on the same job; SQLite ignores the
    clause (one dispatcher per SQLite database).
    """
    query = (
        select(Job)
        .where(*_due(now or _now()))
        .order_by(col(Job.created_at), col(Job.id))
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return list(session.exec(query).all())


def count_due_dispatch(session: Session, *, now: datetime | None = None) -> int:
    """How many jobs wait for their flow run and may be dispatched now."""
    query = select(func.count()).select_from(Job).where(*_due(now or _now()))
    return int(session.exec(query).one())


def _due(moment: datetime) -> tuple[Any, ...]:
    return (
        col(Job.dispatch_pending) == true(),
        or_(col(Job.dispatch_next_at).is_(None), col(Job.dispatch_next_at) <= moment),
    )


def mark_waiting_dispatched(
    session: Session, *, job_ids: list[uuid.UUID], flow_run_id: str
) -> list[uuid.UUID]:
    """The run carrying ``job_ids`` exists: those still waiting leave the outbox.

    Returns the ids recorded, in the given order; rows another dispatcher holds are skipped.
    One UPDATE for all of them: on SQLite the write lock, which the webhook's next delivery
    may be waiting for, is held for one statement.
    """
    table: Table = Job.__table__  # type: ignore[attr-defined]
    query = (
        select(table.c.id)
        .where(table.c.id.in_(job_ids), table.c.dispatch_pending == true())
        .with_for_update(skip_locked=True)
    )
    waiting = set(session.execute(query).scalars())
    if not waiting:
        return []
    now = _now()
    statement = (
        update(table)
        .where(table.c.id.in_(waiting), table.c.dispatch_pending == true())
        .values(
            flow_run_id=flow_run_id,
            dispatch_pending=False,
            dispatch_attempts=table.c.dispatch_attempts + 1,
            dispatch_error=None,
            dispatch_next_at=None,
            dispatched_at=now,
            updated_at=now,
        )
        .returning(table.c.id)
    )
    updated = set(session.execute(statement).scalars())
    return [job_id for job_id in job_ids if job_id in updated]


def mark_dispatch_failed(
    session: Session, *, job_id: uuid.UUID, error: str, retry_at: datetime | None = None
) -> Job:
    """Creating the flow run failed: the job stays waiting, tried again at ``retry_at``."""
    job = _require(session, job_id)
    job.dispatch_attempts += 1
    job.dispatch_error = error[:2000]
    job.dispatch_next_at = retry_at
    job.updated_at = _now()
    return job


def count_pending_dispatch(session: Session) -> int:
    """How many jobs wait for their flow run."""
    query = select(func.count()).select_from(Job).where(col(Job.dispatch_pending) == true())
    return int(session.exec(query).one())


def set_manifest_key(session: Session, *, job_id: uuid.UUID, key: str) -> None:
    """Remember where the job's manifest is (written once every asset is stored)."""
    job = _require(session, job_id)
    job.manifest_key = key
    job.updated_at = _now()


def start_job(session: Session, *, job_id: uuid.UUID, flow_run_id: str | None = None) -> Job:
    """Mark the job as started; a FAILED job starts again from NEW (its outputs are reused).

    A DONE job keeps its status while a re-run walks its (mostly skipped) steps again. A held
    job that a person approved continues from its derivatives (the run publishes it); one still
    waiting keeps waiting while a run walks its steps and judges it again (a run resumed from
    the Prefect UI's form does this before it reads the decision). A rejected job starts over.
    """
    job = _require(session, job_id)
    if job.status == JobStatus.NEEDS_REVIEW and job.review_decision == "approved":
        job.status = JobStatus.DERIVATIVES
    elif job.status in (JobStatus.FAILED, JobStatus.REJECTED):
        job.status = JobStatus.NEW
        _forget_review(job)
    job.error = job.error_step = job.error_type = None
    job.started_at = _now()
    job.finished_at = None
    if flow_run_id:
        job.flow_run_id = flow_run_id
    job.updated_at = _now()
    return job


def reset_for_rerun(session: Session, *, job_id: uuid.UUID) -> Job:
    """Send the job back to NEW so a forced re-render walks every status again (and is
    judged again: an earlier review decision no longer applies)."""
    job = _require(session, job_id)
    job.status = JobStatus.NEW
    _forget_review(job)
    job.finished_at = None
    job.updated_at = _now()
    return job


def _forget_review(job: Job) -> None:
    job.review_decision = job.review_by = job.review_at = job.review_reason = None


def advance_status(session: Session, *, job_id: uuid.UUID, status: JobStatus) -> Job:
    """Move the job forward to ``status``; never backwards, never out of a settled status."""
    job = _require(session, job_id)
    current = JobStatus(job.status)
    if current in STATUS_ORDER and STATUS_ORDER.index(status) > STATUS_ORDER.index(current):
        job.status = status
        job.updated_at = _now()
    return job


def _step_row(session: Session, job_id: uuid.UUID, step: Step, variant: int) -> JobStep:
    query = select(JobStep).where(
        JobStep.job_id == job_id, JobStep.step == step, JobStep.variant == variant
    )
    row = session.exec(query).first()
    if row is None:
        row = JobStep(job_id=job_id, step=step, variant=variant)
        session.add(row)
    return row


def step_started(
    session: Session, *, job_id: uuid.UUID, step: Step, variant: int = 0, attempt: int = 1
) -> None:
    """A step attempt began."""
    row = _step_row(session, job_id, step, variant)
    row.state = StepState.RUNNING
    row.attempts = max(attempt, 1)
    row.started_at = _now()
    row.finished_at = None
    row.error = None


def step_finished(
    session: Session,
    *,
    job_id: uuid.UUID,
    step: Step,
    variant: int = 0,
    skipped: bool = False,
    duration_ms: float,
    cost_usd: float = 0.0,
    provider: str | None = None,
    details: dict[str, object] | None = None,
) -> None:
    """A step completed (or found its outputs already stored); its cost adds to the step's
    and the job's (both are totals over every attempt and every run)."""
    row = _step_row(session, job_id, step, variant)
    row.state = StepState.SKIPPED if skipped else StepState.COMPLETED
    row.finished_at = _now()
    row.duration_ms = round(duration_ms, 1)
    row.provider = provider
    row.details = json.dumps(details, sort_keys=True, default=str) if details else None
    row.error = None
    _add_cost(session, job_id, row, cost_usd)


def _add_cost(session: Session, job_id: uuid.UUID, row: JobStep, cost_usd: float) -> None:
    """Money spent is never forgotten: a step's and a job's cost add up over every attempt."""
    if cost_usd:
        row.cost_usd = round(row.cost_usd + cost_usd, 6)
        job = _require(session, job_id)
        job.cost_usd = round(job.cost_usd + cost_usd, 6)


def step_failed(
    session: Session,
    *,
    job_id: uuid.UUID,
    step: Step,
    variant: int = 0,
    attempt: int = 1,
    error: str,
    final: bool,
    duration_ms: float | None = None,
    cost_usd: float = 0.0,
) -> None:
    """A step attempt failed; ``final`` when no retry follows; ``cost_usd`` was spent anyway."""
    row = _step_row(session, job_id, step, variant)
    _add_cost(session, job_id, row, cost_usd)
    row.state = StepState.FAILED if final else StepState.RETRYING
    row.attempts = max(attempt, row.attempts)
    row.finished_at = _now()
    row.duration_ms = round(duration_ms, 1) if duration_ms is not None else row.duration_ms
    row.error = error[:4000]


def record_assets(session: Session, *, job_id: uuid.UUID, assets: Iterable[AssetRecord]) -> None:
    """Insert or update the job's asset rows (one per key)."""
    records = list(assets)
    keys = [record.key for record in records]
    query = select(Asset).where(Asset.job_id == job_id, col(Asset.key).in_(keys))
    existing = {row.key: row for row in session.exec(query)}
    for record in records:
        row = existing.get(record.key)
        if row is None:
            row = Asset.model_validate(record, update={"job_id": job_id})
        else:
            row.sqlmodel_update(record)  # every column, defaults included
        session.add(row)


def fail_job(
    session: Session, *, job_id: uuid.UUID, step: str, error_type: str, message: str
) -> Job:
    """Mark the job FAILED, keeping the step, the error type and the message."""
    job = _require(session, job_id)
    job.status = JobStatus.FAILED
    job.error_step = step
    job.error_type = error_type
    job.error = message[:4000]
    job.finished_at = _now()
    job.updated_at = job.finished_at
    return job


def finish_job(session: Session, *, job_id: uuid.UUID, manifest_key: str | None) -> Job:
    """Mark the job DONE."""
    job = _require(session, job_id)
    job.status = JobStatus.DONE
    job.manifest_key = manifest_key or job.manifest_key
    job.finished_at = _now()
    job.updated_at = job.finished_at
    return job


def _require(session: Session, job_id: uuid.UUID) -> Job:
    job = session.get(Job, job_id)
    if job is None:
        raise LookupError(f"no job {job_id}")
    return job


def list_steps(session: Session, *, job_id: uuid.UUID) -> list[JobStep]:
    """The job's step rows in pipeline order."""
    order = {step: index for index, step in enumerate(Step)}
    rows = session.exec(select(JobStep).where(JobStep.job_id == job_id)).all()
    return sorted(rows, key=lambda row: (order[Step(row.step)], row.variant))


def list_assets(session: Session, *, job_id: uuid.UUID) -> list[Asset]:
    """The job's asset rows in pipeline order, then by key."""
    order = {kind: index for index, kind in enumerate(AssetKind)}
    rows = session.exec(select(Asset).where(Asset.job_id == job_id)).all()
    return sorted(rows, key=lambda row: (order[AssetKind(row.kind)], row.key))


def job_view(session: Session, *, job_id: uuid.UUID) -> JobView | None:
    """The job with its steps and assets, as the CLI and the API show it."""
    job = session.get(Job, job_id)
    if job is None:
        return None
    steps = [StepView.model_validate(row) for row in list_steps(session, job_id=job_id)]
    assets = [AssetView.model_validate(row) for row in list_assets(session, job_id=job_id)]
    return JobView.model_validate(job).model_copy(update={"steps": steps, "assets": assets})

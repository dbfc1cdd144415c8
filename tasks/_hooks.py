"""Step bookkeeping: every step attempt writes its JobStep row, and the job's status advances.

Each step body runs inside ``tracked(...)`` (the ``tasks.step`` decorator puts it there), which
records RUNNING with the attempt number, then COMPLETED/SKIPPED with duration, cost and
provider, or RETRYING/FAILED with the error.
Writing from the body (rather than only from Prefect state hooks) keeps the rows right when a
step is called directly with ``.fn()`` and when the hook process is gone. Each write is retried
on its own while the database is unreachable (``_runtime.run_in_db``): a restart after a
successful body delays the COMPLETED row, it never runs the body again.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial

from sqlmodel import Session

from core import jobs
from core.errors import is_retryable_error
from core.jobs import AssetRecord
from core.tables import JobStatus, Step
from tasks._runtime import run_in_db

__all__ = ["StepRecord", "advance", "error_text", "tracked"]


def error_text(exc: BaseException) -> str:
    """``Type: message`` as shown to operators (messages are redacted where they are raised)."""
    return f"{type(exc).__name__}: {exc}"


@dataclass
class StepRecord:
    """What a step reports about its attempt; filled in by the step body."""

    provider: str | None = None
    cost_usd: float = 0.0
    skipped: bool = False
    details: dict[str, object] = field(default_factory=dict)
    assets: list[AssetRecord] = field(default_factory=list)
    advance_to: JobStatus | None = None


def _attempt() -> tuple[int, int]:
    """(this attempt, retries allowed) from the Prefect run context; (1, 0) outside Prefect."""
    from prefect.context import TaskRunContext

    context = TaskRunContext.get()
    if context is None:
        return 1, 0
    return max(context.task_run.run_count, 1), context.task.retries


@contextmanager
def tracked(job: uuid.UUID, step: Step, variant: int = 0) -> Iterator[StepRecord]:
    """Record one attempt of ``step`` for ``job`` around the step body."""
    attempt, retries = _attempt()
    started_row = partial(
        jobs.step_started, job_id=job, step=step, variant=variant, attempt=attempt
    )
    run_in_db(started_row, what=f"{step} started")
    record = StepRecord()
    started = time.perf_counter()
    try:
        yield record
    except BaseException as exc:
        final = not is_retryable_error(exc) or attempt > retries
        failed_row = partial(
            jobs.step_failed,
            job_id=job,
            step=step,
            variant=variant,
            attempt=attempt,
            error=error_text(exc),
            final=final,
            duration_ms=(time.perf_counter() - started) * 1000,
            cost_usd=record.cost_usd,  # paid calls made before the failure
        )
        run_in_db(failed_row, what=f"{step} failed")
        raise
    _finish(job, step, variant, record, (time.perf_counter() - started) * 1000)


def _finish(job: uuid.UUID, step: Step, variant: int, record: StepRecord, ms: float) -> None:
    """Record the finished attempt: its assets, its row and the job's progress, in one commit."""

    def write(session: Session) -> None:
        if record.assets:
            jobs.record_assets(session, job_id=job, assets=record.assets)
        jobs.step_finished(
            session,
            job_id=job,
            step=step,
            variant=variant,
            skipped=record.skipped,
            duration_ms=ms,
            cost_usd=record.cost_usd,
            provider=record.provider,
            details=record.details or None,
        )
        if record.advance_to is not None:
            jobs.advance_status(session, job_id=job, status=record.advance_to)

    run_in_db(write, what=f"{step} finished")


def advance(job: uuid.UUID, status: JobStatus) -> None:
    """Move the job forward to ``status`` (used by the flow after a mapped step completes)."""
    move = partial(jobs.advance_status, job_id=job, status=status)
    run_in_db(move, what=f"advance to {status}")

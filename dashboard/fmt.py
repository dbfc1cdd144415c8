"""Pure formatting helpers: bytes, durations, money, ages, and the pipeline's seven stages."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from core.tables import STATUS_ORDER, JobStatus, Step

__all__ = [
    "STAGE_OF_STEP",
    "Stage",
    "ago",
    "human_bytes",
    "human_ms",
    "pipeline_stages",
    "stage_number",
    "usd",
]

# The status a step produces when it succeeds: a failing step fails that stage of the seven.
STAGE_OF_STEP: dict[str, JobStatus] = {
    Step.DOWNLOAD: JobStatus.BG_REMOVED,
    Step.REMOVE_BACKGROUND: JobStatus.BG_REMOVED,
    Step.GENERATE_BACKGROUNDS: JobStatus.BACKGROUND_READY,
    Step.COMPOSITE: JobStatus.COMPOSITED,
    Step.DERIVATIVES: JobStatus.DERIVATIVES,
    Step.MANIFEST: JobStatus.SHOPIFY_PUSH,
    Step.PUBLISH: JobStatus.DONE,
}
TOTAL_STAGES = len(STATUS_ORDER)
# Held jobs rest after their manifest (the publish stage waits for a person); a rejected one
# ends at the publish stage, which it never passes.
_RESTING = {
    JobStatus.NEEDS_REVIEW: JobStatus.SHOPIFY_PUSH.step_number,
    JobStatus.REJECTED: TOTAL_STAGES,
}


@dataclass(frozen=True)
class Stage:
    """One of the seven segments of the progress bar."""

    number: int
    status: str
    state: str  # "done" | "current" | "failed" | "pending"


def stage_number(
    status: str, error_step: str | None = None, completed: tuple[str, ...] = ()
) -> int:
    """ "Step k of 7" for a job: NEW = 1 … DONE = 7; a FAILED job counts the stage it failed in.

    Args:
        status: the job's status.
        error_step: the step that failed (FAILED jobs).
        completed: steps that completed, used when a failed job does not name its step.

    Example:
        >>> stage_number("COMPOSITED"), stage_number("FAILED", "composite")
        (4, 4)
    """
    job_status = JobStatus(status)
    if job_status in _RESTING:
        return _RESTING[job_status]
    if job_status is not JobStatus.FAILED:
        return job_status.step_number
    if error_step in STAGE_OF_STEP:
        return STAGE_OF_STEP[error_step].step_number
    reached = [STAGE_OF_STEP[step].step_number for step in completed if step in STAGE_OF_STEP]
    return min(max(reached, default=1) + 1, TOTAL_STAGES)


def pipeline_stages(
    status: str, error_step: str | None = None, completed: tuple[str, ...] = ()
) -> list[Stage]:
    """The seven stages with their state, for drawing the progress bar.

    Example:
        >>> [s.state for s in pipeline_stages("BG_REMOVED")][:3]
        ['done', 'done', 'current']
    """
    current = stage_number(status, error_step, completed)
    failed = status in (JobStatus.FAILED, JobStatus.REJECTED)
    done = status == JobStatus.DONE
    stages = []
    for number, stage_status in enumerate(STATUS_ORDER, start=1):
        if failed:
            state = "done" if number < current else "failed" if number == current else "pending"
        elif done or number <= current:
            state = "done"
        else:
            state = "current" if number == current + 1 else "pending"
        stages.append(Stage(number=number, status=stage_status.value, state=state))
    return stages


def human_bytes(count: int | float) -> str:
    """``12.3 KB``; decimal units, like file managers and S3 consoles.

    Example:
        >>> human_bytes(999), human_bytes(44269), human_bytes(3_200_000)
        ('999 B', '44.3 KB', '3.2 MB')
    """
    value = float(count)
    for unit in ("B", "KB", "MB", "GB"):
        if abs(value) < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} GB"


def human_ms(ms: float | None) -> str:
    """``850 ms``, ``3.4 s``, ``2 min 05 s``; an en dash when unknown.

    Example:
        >>> human_ms(850.4), human_ms(3356), human_ms(125_000), human_ms(None)
        ('850 ms', '3.4 s', '2 min 05 s', '–')
    """
    if ms is None:
        return "–"
    if ms < 1000:
        return f"{ms:.0f} ms"
    if ms < 60_000:
        return f"{ms / 1000:.1f} s"
    minutes, seconds = divmod(round(ms / 1000), 60)
    return f"{minutes} min {seconds:02d} s"


def usd(amount: float) -> str:
    """Money with enough digits for per-call API prices.

    Example:
        >>> usd(0.0125), usd(12.5)
        ('$0.0125', '$12.50')
    """
    return f"${amount:,.2f}" if abs(amount) >= 1 else f"${amount:.4f}"


def ago(moment: datetime | None, now: datetime | None = None) -> str:
    """``just now``, ``5 min ago``, ``3 h ago``, ``2 d ago``.

    Example:
        >>> from datetime import timedelta
        >>> t = datetime(2026, 1, 1, tzinfo=UTC)
        >>> ago(t, t + timedelta(minutes=5)), ago(t, t + timedelta(days=2))
        ('5 min ago', '2 d ago')
    """
    if moment is None:
        return "–"
    seconds = ((now or datetime.now(UTC)) - moment).total_seconds()
    if seconds < 45:
        return "just now"
    if seconds < 3600:
        return f"{max(1, round(seconds / 60))} min ago"
    if seconds < 86400:
        return f"{round(seconds / 3600)} h ago"
    return f"{round(seconds / 86400)} d ago"

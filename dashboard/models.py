"""Plain, picklable read models the dashboard caches and renders (no database objects leak out)."""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

from core.tables import STATUS_ORDER, JobStatus, Step

__all__ = [
    "AssetRow",
    "FailureGroup",
    "JobDetail",
    "JobFilter",
    "JobPage",
    "JobSummary",
    "Overview",
    "StepRow",
    "StepStat",
    "as_utc",
]


def as_utc(moment: datetime | None) -> datetime | None:
    """``moment`` as an aware UTC datetime; SQLite hands back naive values that are UTC already."""
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _elapsed_ms(started: datetime | None, finished: datetime | None) -> float | None:
    if started is None or finished is None:
        return None
    return round((finished - started).total_seconds() * 1000, 1)


@dataclass(frozen=True)
class JobFilter:
    """What the job table shows: every field narrows the set; empty means "any".

    Attributes:
        statuses: status values to keep.
        sku: text the SKU contains (case-insensitive).
        themes: theme names to keep.
        date_from: first creation day to keep (UTC), inclusive.
        date_to: last creation day to keep (UTC), inclusive.
    """

    statuses: tuple[str, ...] = ()
    sku: str = ""
    themes: tuple[str, ...] = ()
    date_from: date | None = None
    date_to: date | None = None

    @property
    def active(self) -> bool:
        """True when any filter is set."""
        return bool(self.statuses or self.sku.strip() or self.themes or self.date_from)


@dataclass(frozen=True)
class JobSummary:
    """One row of the job table."""

    id: uuid.UUID
    sku: str
    theme: str
    status: str
    cost_usd: float
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    error: str | None = None
    error_step: str | None = None
    error_type: str | None = None
    flow_run_id: str | None = None

    @property
    def step_number(self) -> int:
        """ "Step k of 7" (0 for FAILED: see ``components.pipeline_stages`` for where it failed)."""
        return JobStatus(self.status).step_number

    @property
    def running(self) -> bool:
        """True while the job can still move forward."""
        return self.status not in (JobStatus.DONE, JobStatus.FAILED)

    @property
    def duration_ms(self) -> float | None:
        """Wall time from start to finish, when both are known."""
        return _elapsed_ms(self.started_at, self.finished_at)


@dataclass(frozen=True)
class JobPage:
    """One page of the filtered job table."""

    rows: tuple[JobSummary, ...]
    total: int
    page: int
    page_size: int

    @property
    def pages(self) -> int:
        """Number of pages (at least 1, so an empty table still has a page 1)."""
        return max(1, math.ceil(self.total / self.page_size))


@dataclass(frozen=True)
class StepStat:
    """Duration percentiles of one step over recent completed runs."""

    step: str
    runs: int
    median_ms: float
    p95_ms: float


@dataclass(frozen=True)
class FailureGroup:
    """How often one kind of error failed jobs recently."""

    step: str
    error_type: str
    count: int


@dataclass(frozen=True)
class Overview:
    """Everything the overview's headline section shows."""

    counts: dict[str, int]
    per_hour: tuple[tuple[datetime, int], ...]
    step_stats: tuple[StepStat, ...]
    cost_today: float
    cost_week: float
    failures: tuple[JobSummary, ...]
    failure_groups: tuple[FailureGroup, ...]
    generated_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def total(self) -> int:
        """Number of jobs in the table."""
        return sum(self.counts.values())

    @property
    def in_progress(self) -> int:
        """Jobs that are neither DONE nor FAILED."""
        live = {status.value for status in STATUS_ORDER if status is not JobStatus.DONE}
        return sum(count for status, count in self.counts.items() if status in live)


@dataclass(frozen=True)
class StepRow:
    """One step (or one variant of a mapped step) of a job."""

    step: str
    variant: int
    state: str
    attempts: int
    started_at: datetime | None
    finished_at: datetime | None
    duration_ms: float | None
    cost_usd: float
    provider: str | None
    error: str | None
    details: str | None

    @property
    def label(self) -> str:
        """``composite #2`` for mapped steps, the step name otherwise."""
        return f"{self.step} #{self.variant}" if self.variant else self.step

    @property
    def order(self) -> tuple[int, int]:
        """Sort key: pipeline order, then variant."""
        return (list(Step).index(Step(self.step)), self.variant)


@dataclass(frozen=True)
class AssetRow:
    """One stored file of a job."""

    kind: str
    key: str
    content_type: str
    bytes: int
    variant: int | None = None
    size: str | None = None
    format: str | None = None
    width: int | None = None
    height: int | None = None
    sha256: str | None = None

    @property
    def name(self) -> str:
        """The last part of the key, as a download file name."""
        return self.key.rsplit("/", 1)[-1]

    @property
    def pixels(self) -> str:
        """``1200×1200``, or an empty string for files without pixels."""
        return f"{self.width}×{self.height}" if self.width and self.height else ""


@dataclass(frozen=True)
class JobDetail:
    """A job with its steps and assets, as the job page shows it."""

    job: JobSummary
    sha256: str
    source_url: str
    manifest_key: str | None
    updated_at: datetime | None
    steps: tuple[StepRow, ...]
    assets: tuple[AssetRow, ...]

    def assets_of(self, kind: str) -> list[AssetRow]:
        """The job's assets of one kind, by variant then key."""
        rows = [asset for asset in self.assets if asset.kind == kind]
        return sorted(rows, key=lambda asset: (asset.variant or 0, asset.key))

    @property
    def total_bytes(self) -> int:
        """Sum of every stored file's size."""
        return sum(asset.bytes for asset in self.assets)

    @property
    def steps_cost_usd(self) -> float:
        """Sum of the steps' recorded costs."""
        return round(sum(step.cost_usd for step in self.steps), 6)

"""Plain, picklable read models the dashboard caches and renders (no database objects leak out).

The job, step and asset rows derive from the tables' column bases (``core.tables``), copy a row
with ``model_validate(row)`` and add only what the pages compute from it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

from core.tables import (
    SETTLED_STATUSES,
    STATUS_ORDER,
    AssetBase,
    JobBase,
    JobStatus,
    JobStepBase,
    RowModel,
    Step,
)

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
]


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


class JobSummary(RowModel, JobBase):
    """One job (a row of the job table, the head of the job page)."""

    @property
    def step_number(self) -> int:
        """ "Step k of 7" (0 for FAILED: see ``components.pipeline_stages`` for where it failed)."""
        return JobStatus(self.status).step_number

    @property
    def running(self) -> bool:
        """True while a run is working on the job (not ended, not waiting for a person)."""
        return self.status not in SETTLED_STATUSES


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


class StepRow(RowModel, JobStepBase):
    """One step (or one variant of a mapped step) of a job."""

    @property
    def label(self) -> str:
        """``composite #2`` for mapped steps, the step name otherwise."""
        return f"{self.step} #{self.variant}" if self.variant else self.step

    @property
    def order(self) -> tuple[int, int]:
        """Sort key: pipeline order, then variant."""
        return (list(Step).index(Step(self.step)), self.variant)


class AssetRow(RowModel, AssetBase):
    """One stored file of a job."""

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

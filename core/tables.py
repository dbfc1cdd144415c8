"""SQLModel tables that mirror flow state: ``Job``, ``JobStep``, ``Asset`` and their status enums.

Prefect stays the source of truth for runs; these rows are what the webhook, the CLI and the
dashboard read. Schema changes go through a migration in ``core/migrations``.

Each table's columns are declared once, on a base without ``table=True`` (``JobBase``,
``JobStepBase``, ``AssetBase``). The table adds its keys and constraints; the models that carry
rows elsewhere (the asset record a step reports, the job a run is started for, the dashboard's
rows) derive from the same base and ``RowModel``, so a new column reaches them without another
edit. The models of an external contract (the API's views, the manifest: subclasses of
``core.schemas.CamelModel``) name the columns they publish, in their published order, and read
them from a row with ``from_attributes``. So a new column is one line here plus a migration,
and one more line in the one contract that should publish it.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from enum import StrEnum

from pydantic import field_validator
from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlmodel import Field, SQLModel

__all__ = [
    "SETTLED_STATUSES",
    "STATUS_ORDER",
    "Asset",
    "AssetBase",
    "AssetKind",
    "Job",
    "JobBase",
    "JobStatus",
    "JobStep",
    "JobStepBase",
    "RowModel",
    "Step",
    "StepState",
    "as_utc",
    "utcnow",
]


def utcnow() -> datetime:
    """Timezone-aware now, the only clock the tables use."""
    return datetime.now(UTC)


def as_utc(moment: datetime) -> datetime:
    """``moment`` as an aware UTC datetime (SQLite hands stored times back without a zone)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


class JobStatus(StrEnum):
    """A job's progress, in pipeline order (docs/architecture.md, "Statuses and progress")."""

    NEW = "NEW"
    BG_REMOVED = "BG_REMOVED"
    BACKGROUND_READY = "BACKGROUND_READY"
    COMPOSITED = "COMPOSITED"
    DERIVATIVES = "DERIVATIVES"
    SHOPIFY_PUSH = "SHOPIFY_PUSH"
    DONE = "DONE"
    FAILED = "FAILED"
    # Held after its manifest, before publishing: a person decides (core/review.py).
    NEEDS_REVIEW = "NEEDS_REVIEW"
    # A person rejected it: final, nothing published.
    REJECTED = "REJECTED"

    @property
    def step_number(self) -> int:
        """ "Step k of 7": NEW = 1 … DONE = 7 (FAILED has no number of its own: 0)."""
        return STATUS_ORDER.index(self) + 1 if self in STATUS_ORDER else 0


# No run is working on a job in these: it ended, or waits for a person (NEEDS_REVIEW).
SETTLED_STATUSES: tuple[JobStatus, ...] = (
    JobStatus.DONE,
    JobStatus.FAILED,
    JobStatus.NEEDS_REVIEW,
    JobStatus.REJECTED,
)

STATUS_ORDER: tuple[JobStatus, ...] = (
    JobStatus.NEW,
    JobStatus.BG_REMOVED,
    JobStatus.BACKGROUND_READY,
    JobStatus.COMPOSITED,
    JobStatus.DERIVATIVES,
    JobStatus.SHOPIFY_PUSH,
    JobStatus.DONE,
)


class Step(StrEnum):
    """The pipeline's steps, one Prefect task each, in order."""

    DOWNLOAD = "download"
    REMOVE_BACKGROUND = "remove_background"
    GENERATE_BACKGROUNDS = "generate_backgrounds"
    COMPOSITE = "composite"
    DERIVATIVES = "derivatives"
    QUALITY = "quality"
    MANIFEST = "manifest"
    PUBLISH = "publish"


class StepState(StrEnum):
    """State of one step row."""

    PENDING = "PENDING"
    RUNNING = "RUNNING"
    RETRYING = "RETRYING"
    COMPLETED = "COMPLETED"
    SKIPPED = "SKIPPED"
    FAILED = "FAILED"


class AssetKind(StrEnum):
    """What an asset row describes."""

    ORIGINAL = "original"
    CUTOUT = "cutout"
    MASK = "mask"
    BACKGROUND = "background"
    COMPOSITE = "composite"
    DERIVATIVE = "derivative"
    MANIFEST = "manifest"


class RowModel(SQLModel):
    """Mixed into a column base, a model that carries a row's values outside the database.

    Frozen, and its times are aware and in UTC (SQLite hands back naive ones that are UTC).
    ``class AssetRecord(RowModel, AssetBase)`` declares one; ``AssetRecord.model_validate(row)``
    copies a row.
    """

    model_config = {"frozen": True}

    @field_validator("*")
    @classmethod
    def _utc(cls, value: object) -> object:
        return as_utc(value) if isinstance(value, datetime) else value


def _tz_column(nullable: bool = True) -> Column[datetime]:
    return Column(DateTime(timezone=True), nullable=nullable)


class JobBase(SQLModel):
    """The columns of a job, its id included (the id is the job's public name)."""

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    sku: str = Field(max_length=64, index=True)
    sha256: str = Field(max_length=64)
    theme: str = Field(max_length=64)
    source_url: str = Field(sa_column=Column(Text, nullable=False))
    status: JobStatus = Field(default=JobStatus.NEW, sa_type=String(32))
    flow_run_id: str | None = Field(default=None, max_length=64)
    error: str | None = Field(default=None, sa_column=Column(Text))
    error_step: str | None = Field(default=None, max_length=32)
    error_type: str | None = Field(default=None, max_length=128)
    manifest_key: str | None = Field(default=None, sa_column=Column(Text))
    cost_usd: float = 0.0
    created_at: datetime = Field(default_factory=utcnow, sa_column=_tz_column(False))
    started_at: datetime | None = Field(default=None, sa_column=_tz_column())
    finished_at: datetime | None = Field(default=None, sa_column=_tz_column())
    updated_at: datetime = Field(default_factory=utcnow, sa_column=_tz_column(False))
    # Outbox of the webhook: a job it accepted waits here until the dispatcher has created its
    # flow run. Set explicitly by the webhook; jobs of `packshot process` never wait.
    dispatch_pending: bool = Field(
        default=False, sa_column=Column(Boolean, nullable=False, server_default=false())
    )
    dispatch_attempts: int = Field(
        default=0, sa_column=Column(Integer, nullable=False, server_default="0")
    )
    dispatch_error: str | None = Field(default=None, sa_column=Column(Text))
    dispatch_next_at: datetime | None = Field(default=None, sa_column=_tz_column())
    dispatched_at: datetime | None = Field(default=None, sa_column=_tz_column())
    # Times the job went back to the outbox because its flow run crashed (machine lost).
    recoveries: int = Field(
        default=0, sa_column=Column(Integer, nullable=False, server_default="0")
    )
    # Times a delivery of the FAILED job queued a new attempt (each gets its own run).
    redeliveries: int = Field(
        default=0, sa_column=Column(Integer, nullable=False, server_default="0")
    )
    # The quality object of the last quality step (JSON: verdict, score, checks).
    quality: str | None = Field(default=None, sa_column=Column(Text))
    # The review decision of a held job: who decided, when, and why (a rejection's reason).
    review_decision: str | None = Field(default=None, max_length=16)
    review_by: str | None = Field(default=None, max_length=128)
    review_at: datetime | None = Field(default=None, sa_column=_tz_column())
    review_reason: str | None = Field(default=None, sa_column=Column(Text))

    @property
    def duration_ms(self) -> float | None:
        """Wall time from start to finish in milliseconds, when both are known."""
        if self.started_at is None or self.finished_at is None:
            return None
        elapsed = as_utc(self.finished_at) - as_utc(self.started_at)
        return round(elapsed.total_seconds() * 1000, 1)


class Job(JobBase, table=True):
    """One (sku, sha256, theme): one image through the pipeline."""

    __tablename__ = "job"
    __table_args__ = (
        UniqueConstraint("sku", "sha256", "theme", name="uq_job_sku_sha256_theme"),
        Index("ix_job_status_created", "status", "created_at"),
        Index("ix_job_dispatch_pending", "dispatch_pending", "created_at"),
    )

    # The whole source URL when ``source_url`` (shown to anyone) had to leave something out:
    # credentials or query values, encrypted with PACKSHOT_SECRET_KEY (``core.sealed``). Kept
    # off ``JobBase`` so that no view, API answer or flow parameter derived from it carries it.
    source_secret: str | None = Field(default=None, sa_column=Column(Text))


class JobStepBase(SQLModel):
    """The columns of a step row, without its row id and job."""

    step: Step = Field(sa_type=String(32))
    variant: int = 0
    state: StepState = Field(default=StepState.PENDING, sa_type=String(16))
    attempts: int = 0
    started_at: datetime | None = Field(default=None, sa_column=_tz_column())
    finished_at: datetime | None = Field(default=None, sa_column=_tz_column())
    duration_ms: float | None = None
    cost_usd: float = 0.0
    provider: str | None = Field(default=None, max_length=64)
    error: str | None = Field(default=None, sa_column=Column(Text))
    details: str | None = Field(default=None, sa_column=Column(Text))


class JobStep(JobStepBase, table=True):
    """One step of one job; mapped steps (composite, derivatives) have one row per variant."""

    __tablename__ = "job_step"
    __table_args__ = (UniqueConstraint("job_id", "step", "variant", name="uq_step_job_variant"),)

    id: int | None = Field(default=None, primary_key=True)
    job_id: uuid.UUID = Field(foreign_key="job.id", index=True, ondelete="CASCADE")


class AssetBase(SQLModel):
    """The columns that describe a stored file: everything of an asset row but its ids and time."""

    kind: AssetKind = Field(sa_type=String(16))
    key: str = Field(sa_column=Column(Text, nullable=False))
    variant: int | None = None
    size: str | None = Field(default=None, max_length=16)
    format: str | None = Field(default=None, max_length=16)
    width: int | None = None
    height: int | None = None
    bytes: int = 0
    content_type: str = Field(max_length=64)
    sha256: str | None = Field(default=None, max_length=64)


class Asset(AssetBase, table=True):
    """One object in the store that a job produced or reused."""

    __tablename__ = "asset"
    __table_args__ = (UniqueConstraint("job_id", "key", name="uq_asset_job_key"),)

    id: int | None = Field(default=None, primary_key=True)
    job_id: uuid.UUID = Field(foreign_key="job.id", index=True, ondelete="CASCADE")
    created_at: datetime = Field(default_factory=utcnow, sa_column=_tz_column(False))

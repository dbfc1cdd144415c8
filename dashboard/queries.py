"""Read-only, briefly cached database queries of the dashboard (SQLite or PostgreSQL).

Every query takes the database URL as its first argument, so each database has its own cache
entries, and raises :class:`DatabaseUnavailable` or :class:`SchemaMissing` instead of a driver
error. Lists are paginated in SQL; nothing here loads the whole job table into memory.
"""

from __future__ import annotations

import math
import uuid
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import streamlit as st
from sqlalchemy import ColumnElement, String, and_, case, cast, func, literal_column
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlmodel import Session, col, select

from core import jobs
from core.db import session_scope
from core.errors import ConfigurationError
from core.tables import Job, JobStatus, JobStep, Step, StepState
from core.urls import redact_url
from dashboard.models import (
    AssetRow,
    FailureGroup,
    JobDetail,
    JobFilter,
    JobPage,
    JobSummary,
    Overview,
    StepRow,
    StepStat,
    as_utc,
)

__all__ = [
    "DashboardDataError",
    "DatabaseUnavailable",
    "SchemaMissing",
    "job_page",
    "load_job",
    "overview",
    "recent_jobs",
    "themes",
]

# Short enough that a 5-second refresh shows new work, long enough that many open browsers
# (or one impatient user) cost one query per interval, not one per rerun.
LIST_TTL_S = 3
STATS_TTL_S = 10
JOB_TTL_S = 2
STATS_WINDOW = timedelta(days=7)
STATS_MAX_ROWS = 20_000
HOURS_SHOWN = 24


class DashboardDataError(Exception):
    """The dashboard could not read the job tables."""


class DatabaseUnavailable(DashboardDataError):
    """The database cannot be reached or refused the query; the message is safe to show."""


class SchemaMissing(DashboardDataError):
    """The database is reachable but has no job tables yet (nothing has run there)."""


def _missing_table(exc: DBAPIError) -> bool:
    original = exc.orig
    if getattr(original, "sqlstate", None) == "42P01":  # PostgreSQL: undefined_table
        return True
    return "no such table" in str(original)


@contextmanager
def _read(database_url: str) -> Iterator[Session]:
    """A session whose failures surface as the dashboard's own, displayable errors."""
    shown = redact_url(database_url)
    try:
        with session_scope(database_url) as session:
            yield session
    except DBAPIError as exc:
        if _missing_table(exc):
            raise SchemaMissing(f"no job tables in {shown}") from exc
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else type(exc).__name__
        raise DatabaseUnavailable(f"database {shown} unreachable: {reason}") from exc
    except (SQLAlchemyError, ConfigurationError) as exc:
        raise DatabaseUnavailable(f"database {shown} unusable: {exc}") from exc


def _summary(job: Job) -> JobSummary:
    return JobSummary(
        id=job.id,
        sku=job.sku,
        theme=job.theme,
        status=str(job.status),
        cost_usd=job.cost_usd,
        created_at=as_utc(job.created_at) or datetime.now(UTC),
        started_at=as_utc(job.started_at),
        finished_at=as_utc(job.finished_at),
        error=job.error,
        error_step=job.error_step,
        error_type=job.error_type,
        flow_run_id=job.flow_run_id,
    )


def _day_start(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def _conditions(job_filter: JobFilter) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if job_filter.statuses:
        conditions.append(col(Job.status).in_(job_filter.statuses))
    sku = job_filter.sku.strip()
    if sku:
        escaped = sku.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        conditions.append(col(Job.sku).ilike(f"%{escaped}%", escape="\\"))
    if job_filter.themes:
        conditions.append(col(Job.theme).in_(job_filter.themes))
    if job_filter.date_from:
        conditions.append(col(Job.created_at) >= _day_start(job_filter.date_from))
    if job_filter.date_to:
        end = _day_start(job_filter.date_to) + timedelta(days=1)
        conditions.append(col(Job.created_at) < end)
    return conditions


@st.cache_data(ttl=LIST_TTL_S, show_spinner=False, max_entries=256)
def job_page(database_url: str, job_filter: JobFilter, page: int, page_size: int) -> JobPage:
    """One page of jobs matching ``job_filter``, newest first.

    Args:
        database_url: the job database.
        job_filter: what to keep.
        page: page number, from 1; clamped to the last page.
        page_size: rows per page.

    Returns:
        The rows of that page and the total number of matching jobs.
    """
    conditions = _conditions(job_filter)
    with _read(database_url) as session:
        total = session.exec(select(func.count()).select_from(Job).where(*conditions)).one()
        pages = max(1, math.ceil(total / page_size))
        page = min(max(page, 1), pages)
        query = (
            select(Job)
            .where(*conditions)
            .order_by(col(Job.created_at).desc(), col(Job.id).desc())
            .offset((page - 1) * page_size)
            .limit(page_size)
        )
        rows = tuple(_summary(job) for job in session.exec(query))
    return JobPage(rows=rows, total=total, page=page, page_size=page_size)


@st.cache_data(ttl=60, show_spinner=False)
def themes(database_url: str) -> list[str]:
    """Every theme that has a job, for the theme filter."""
    with _read(database_url) as session:
        return sorted(session.exec(select(Job.theme).distinct()).all())


@st.cache_data(ttl=LIST_TTL_S, show_spinner=False)
def recent_jobs(database_url: str, limit: int = 20) -> list[JobSummary]:
    """The newest jobs, for the job picker."""
    with _read(database_url) as session:
        query = select(Job).order_by(col(Job.created_at).desc()).limit(limit)
        return [_summary(job) for job in session.exec(query)]


def _hour_bucket(session: Session) -> ColumnElement[Any]:
    # Both render "YYYY-MM-DD HH" in UTC: SQLite stores UTC wall-clock text, PostgreSQL converts.
    if session.get_bind().dialect.name == "postgresql":
        utc = func.timezone("UTC", col(Job.created_at))
        return func.to_char(utc, literal_column("'YYYY-MM-DD HH24'"))
    return cast(func.strftime("%Y-%m-%d %H", col(Job.created_at)), String)


def _per_hour(session: Session, now: datetime) -> tuple[tuple[datetime, int], ...]:
    start = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=HOURS_SHOWN - 1)
    bucket = _hour_bucket(session).label("hour")
    query = select(bucket, func.count()).where(col(Job.created_at) >= start).group_by(bucket)
    found = {
        datetime.strptime(str(hour), "%Y-%m-%d %H").replace(tzinfo=UTC): int(count)
        for hour, count in session.exec(query)
    }
    hours = (start + timedelta(hours=n) for n in range(HOURS_SHOWN))
    return tuple((hour, found.get(hour, 0)) for hour in hours)


def _percentile(sorted_values: list[float], share: float) -> float:
    """Nearest-rank percentile: the smallest value with at least ``share`` of values at or below."""
    rank = max(1, math.ceil(share * len(sorted_values)))
    return sorted_values[rank - 1]


def _step_stats(session: Session, now: datetime) -> tuple[StepStat, ...]:
    # Skipped steps found their outputs stored and took ~0 ms: they would drag medians down.
    query = (
        select(JobStep.step, JobStep.duration_ms)
        .where(
            JobStep.state == StepState.COMPLETED,
            col(JobStep.duration_ms).is_not(None),
            col(JobStep.finished_at) >= now - STATS_WINDOW,
        )
        # Newest rows by primary key (rows are inserted when a step starts): the key's own
        # index serves this, where ordering by finished_at would sort the whole window.
        .order_by(col(JobStep.id).desc())
        .limit(STATS_MAX_ROWS)
    )
    durations: dict[str, list[float]] = defaultdict(list)
    for step, ms in session.exec(query):
        durations[str(step)].append(float(ms or 0.0))
    order = [step.value for step in Step]
    stats = []
    for step in sorted(durations, key=lambda name: order.index(name) if name in order else 99):
        values = sorted(durations[step])
        stats.append(
            StepStat(
                step=step,
                runs=len(values),
                median_ms=round(_percentile(values, 0.5), 1),
                p95_ms=round(_percentile(values, 0.95), 1),
            )
        )
    return tuple(stats)


def _costs(session: Session, now: datetime) -> tuple[float, float]:
    # Cost is counted when a step finished, so re-running an old job today costs today.
    today = _day_start(now.date())
    week = today - timedelta(days=now.weekday())
    finished = col(JobStep.finished_at)
    query = select(
        func.coalesce(func.sum(case((finished >= today, JobStep.cost_usd), else_=0.0)), 0.0),
        func.coalesce(func.sum(JobStep.cost_usd), 0.0),
    ).where(finished >= week)
    today_cost, week_cost = session.exec(query).one()
    return round(float(today_cost), 6), round(float(week_cost), 6)


def _failures(session: Session, limit: int) -> tuple[JobSummary, ...]:
    query = (
        select(Job)
        .where(Job.status == JobStatus.FAILED)
        .order_by(col(Job.created_at).desc())
        .limit(limit)
    )
    return tuple(_summary(job) for job in session.exec(query))


def _failure_groups(session: Session, now: datetime) -> tuple[FailureGroup, ...]:
    step = func.coalesce(col(Job.error_step), "?")
    kind = func.coalesce(col(Job.error_type), "?")
    query = (
        select(step, kind, func.count())
        .where(and_(col(Job.status) == JobStatus.FAILED, col(Job.created_at) >= now - STATS_WINDOW))
        .group_by(step, kind)
        .order_by(func.count().desc())
        .limit(8)
    )
    return tuple(
        FailureGroup(step=str(s), error_type=str(k), count=int(n))
        for s, k, n in session.exec(query)
    )


@st.cache_data(ttl=STATS_TTL_S, show_spinner=False)
def overview(database_url: str, failures: int = 8) -> Overview:
    """Counts by status, jobs per hour, step percentiles, cost and recent failures.

    Args:
        database_url: the job database.
        failures: how many of the newest failed jobs to list.
    """
    now = datetime.now(UTC)
    with _read(database_url) as session:
        counts_query = select(Job.status, func.count()).group_by(Job.status)
        counts = {str(status): int(count) for status, count in session.exec(counts_query)}
        today, week = _costs(session, now)
        return Overview(
            counts=counts,
            per_hour=_per_hour(session, now),
            step_stats=_step_stats(session, now),
            cost_today=today,
            cost_week=week,
            failures=_failures(session, failures),
            failure_groups=_failure_groups(session, now),
            generated_at=now,
        )


def _step_row(row: JobStep) -> StepRow:
    return StepRow(
        step=str(row.step),
        variant=row.variant,
        state=str(row.state),
        attempts=row.attempts,
        started_at=as_utc(row.started_at),
        finished_at=as_utc(row.finished_at),
        duration_ms=row.duration_ms,
        cost_usd=row.cost_usd,
        provider=row.provider,
        error=row.error,
        details=row.details,
    )


@st.cache_data(ttl=JOB_TTL_S, show_spinner=False, max_entries=64)
def load_job(database_url: str, job_id: uuid.UUID) -> JobDetail | None:
    """The job with its steps and assets, or None if there is no such job."""
    with _read(database_url) as session:
        job = jobs.get_job(session, job_id=job_id)
        if job is None:
            return None
        steps = tuple(_step_row(row) for row in jobs.list_steps(session, job_id=job_id))
        assets = tuple(
            AssetRow(
                kind=str(row.kind),
                key=row.key,
                content_type=row.content_type,
                bytes=row.bytes,
                variant=row.variant,
                size=row.size,
                format=row.format,
                width=row.width,
                height=row.height,
                sha256=row.sha256,
            )
            for row in jobs.list_assets(session, job_id=job_id)
        )
        return JobDetail(
            job=_summary(job),
            sha256=job.sha256,
            source_url=job.source_url,
            manifest_key=job.manifest_key,
            updated_at=as_utc(job.updated_at),
            steps=steps,
            assets=assets,
        )

"""Read-only, briefly cached database queries of the dashboard (SQLite or PostgreSQL).

Every query takes the database URL as its first argument, so each database has its own cache
entries, and raises :class:`DatabaseUnavailable` or :class:`SchemaMissing` instead of a driver
error. Lists are paginated in SQL; nothing here loads the whole job table into memory.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, time, timedelta

import streamlit as st
from sqlalchemy import ColumnElement, func
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlmodel import Session, col, select

from core import jobs
from core.db import session_scope
from core.errors import ConfigurationError
from core.tables import Job
from core.urls import redact_url
from dashboard.models import AssetRow, JobDetail, JobFilter, JobPage, JobSummary, StepRow

__all__ = [
    "DashboardDataError",
    "DatabaseUnavailable",
    "SchemaMissing",
    "day_start",
    "job_page",
    "job_summary",
    "load_job",
    "reading",
    "recent_jobs",
    "themes",
]

# Short enough that a 5-second refresh shows new work, long enough that many open browsers
# (or one impatient user) cost one query per interval, not one per rerun.
LIST_TTL_S = 3
JOB_TTL_S = 2


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
def reading(database_url: str) -> Iterator[Session]:
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


def job_summary(job: Job) -> JobSummary:
    """The job as a table row."""
    return JobSummary.model_validate(job)


def day_start(day: date) -> datetime:
    """Midnight UTC at the start of ``day``."""
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
        conditions.append(col(Job.created_at) >= day_start(job_filter.date_from))
    if job_filter.date_to:
        end = day_start(job_filter.date_to) + timedelta(days=1)
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
    with reading(database_url) as session:
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
        rows = tuple(job_summary(job) for job in session.exec(query))
    return JobPage(rows=rows, total=total, page=page, page_size=page_size)


@st.cache_data(ttl=60, show_spinner=False)
def themes(database_url: str) -> list[str]:
    """Every theme that has a job, for the theme filter."""
    with reading(database_url) as session:
        return sorted(session.exec(select(Job.theme).distinct()).all())


@st.cache_data(ttl=LIST_TTL_S, show_spinner=False)
def recent_jobs(database_url: str, limit: int = 20) -> list[JobSummary]:
    """The newest jobs, for the job picker."""
    with reading(database_url) as session:
        query = select(Job).order_by(col(Job.created_at).desc()).limit(limit)
        return [job_summary(job) for job in session.exec(query)]


@st.cache_data(ttl=JOB_TTL_S, show_spinner=False, max_entries=64)
def load_job(database_url: str, job_id: uuid.UUID) -> JobDetail | None:
    """The job with its steps and assets, or None if there is no such job."""
    with reading(database_url) as session:
        job = jobs.get_job(session, job_id=job_id)
        if job is None:
            return None
        steps = jobs.list_steps(session, job_id=job_id)
        assets = jobs.list_assets(session, job_id=job_id)
        return JobDetail(
            job=job_summary(job),
            steps=tuple(StepRow.model_validate(row) for row in steps),
            assets=tuple(AssetRow.model_validate(row) for row in assets),
        )

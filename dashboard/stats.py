"""Overview statistics: counts, jobs per hour, step percentiles, cost and failures (cached 10 s).

Everything is aggregated in SQL except the percentiles, which are taken from the newest 20,000
completed step rows of the last 7 days (SQLite has no percentile function).
"""

from __future__ import annotations

import math
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

import streamlit as st
from sqlalchemy import ColumnElement, String, and_, case, cast, func, literal_column
from sqlmodel import Session, col, select

from core.tables import Job, JobStatus, JobStep, Step, StepState
from dashboard.models import FailureGroup, JobSummary, Overview, StepStat
from dashboard.queries import day_start, job_summary, reading

__all__ = ["overview", "percentile"]

STATS_TTL_S = 10
STATS_WINDOW = timedelta(days=7)
STATS_MAX_ROWS = 20_000
HOURS_SHOWN = 24


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


def percentile(sorted_values: list[float], share: float) -> float:
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
                median_ms=round(percentile(values, 0.5), 1),
                p95_ms=round(percentile(values, 0.95), 1),
            )
        )
    return tuple(stats)


def _costs(session: Session, now: datetime) -> tuple[float, float]:
    # Cost is counted when a step finished, so re-running an old job today costs today.
    today = day_start(now.date())
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
    return tuple(job_summary(job) for job in session.exec(query))


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
    with reading(database_url) as session:
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

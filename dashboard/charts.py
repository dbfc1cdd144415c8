"""Altair charts of the dashboard: jobs by status, jobs per hour, and a job's step timeline."""

from __future__ import annotations

import altair as alt
import pandas as pd

from core.tables import STATUS_ORDER, JobStatus
from dashboard.models import Overview, StepRow

__all__ = ["per_hour_chart", "status_chart", "step_timeline"]

_STATUS_COLOURS = {
    JobStatus.NEW.value: "#9aa0a6",
    JobStatus.DONE.value: "#34a853",
    JobStatus.FAILED.value: "#d93025",
}
_STATE_COLOURS = {
    "COMPLETED": "#34a853",
    "SKIPPED": "#9aa0a6",
    "RUNNING": "#4285f4",
    "RETRYING": "#f9ab00",
    "FAILED": "#d93025",
    "PENDING": "#dadce0",
}


def status_chart(overview: Overview) -> alt.Chart:
    """Horizontal bars: how many jobs are in each status, in pipeline order."""
    order = [status.value for status in (*STATUS_ORDER, JobStatus.FAILED)]
    frame = pd.DataFrame(
        {
            "status": order,
            "jobs": [overview.counts.get(status, 0) for status in order],
            "colour": [_STATUS_COLOURS.get(status, "#4285f4") for status in order],
        }
    )
    return (
        alt.Chart(frame, height=240)
        .mark_bar()
        .encode(
            y=alt.Y("status:N", sort=order, title=None, axis=alt.Axis(labelOverlap=False)),
            x=alt.X("jobs:Q", title="jobs", axis=alt.Axis(tickMinStep=1, format="d")),
            color=alt.Color("colour:N", scale=None),
            tooltip=["status", "jobs"],
        )
    )


def per_hour_chart(overview: Overview) -> alt.Chart:
    """Columns: jobs created in each of the last 24 hours (UTC)."""
    frame = pd.DataFrame(
        {
            "hour": [hour.replace(tzinfo=None) for hour, _ in overview.per_hour],
            "jobs": [count for _, count in overview.per_hour],
        }
    )
    return (
        alt.Chart(frame, height=220)
        .mark_bar(color="#4285f4")
        .encode(
            x=alt.X("hour:T", title="hour (UTC)", axis=alt.Axis(format="%H:%M")),
            y=alt.Y("jobs:Q", title="jobs created", axis=alt.Axis(tickMinStep=1, format="d")),
            tooltip=[alt.Tooltip("hour:T", format="%Y-%m-%d %H:00"), "jobs"],
        )
    )


def step_timeline(steps: tuple[StepRow, ...]) -> alt.Chart | None:
    """A Gantt chart of the job's steps (mapped variants side by side), or None before any ran."""
    timed = [step for step in steps if step.started_at is not None]
    if not timed:
        return None
    origin = min(step.started_at for step in timed if step.started_at is not None)
    rows: list[dict[str, object]] = []
    labels: list[str] = []
    for step in sorted(timed, key=lambda s: s.order):
        assert step.started_at is not None
        start = (step.started_at - origin).total_seconds() * 1000
        if step.duration_ms is not None:
            end = start + step.duration_ms
        elif step.finished_at is not None:
            end = (step.finished_at - origin).total_seconds() * 1000
        else:
            end = start
        labels.append(step.label)
        rows.append(
            {
                "step": step.label,
                "start_ms": round(start, 1),
                "end_ms": round(max(end, start + 1), 1),
                "ms": step.duration_ms,
                "state": step.state,
                "attempts": step.attempts,
                "provider": step.provider or "",
            }
        )
    frame = pd.DataFrame(rows)
    states = list(_STATE_COLOURS)
    return (
        alt.Chart(frame, height=max(120, 28 * len(rows)))
        .mark_bar(cornerRadius=3)
        .encode(
            y=alt.Y("step:N", sort=labels, title=None),
            x=alt.X("start_ms:Q", title="ms since the first step started"),
            x2="end_ms:Q",
            color=alt.Color(
                "state:N",
                scale=alt.Scale(domain=states, range=[_STATE_COLOURS[s] for s in states]),
                legend=alt.Legend(orient="bottom", title=None),
            ),
            tooltip=["step", "state", "ms", "attempts", "provider"],
        )
    )

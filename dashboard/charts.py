"""Altair charts of the overview: jobs by status and jobs per hour."""

from __future__ import annotations

import altair as alt
import pandas as pd

from core.tables import STATUS_ORDER, JobStatus
from dashboard.models import Overview

__all__ = ["per_hour_chart", "status_chart"]

_STATUS_COLOURS = {
    JobStatus.NEW.value: "#9aa0a6",
    JobStatus.DONE.value: "#34a853",
    JobStatus.FAILED.value: "#d93025",
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

"""Overview page: every job's pipeline at a glance, refreshed every 5 seconds."""

from __future__ import annotations

import streamlit as st

from core.settings import get_settings
from core.tables import STATUS_ORDER, JobStatus
from dashboard import queries, review_queue, stats
from dashboard.components import JOB_PAGE, REVIEW_PAGE, data_error, empty_state, live_refresh
from dashboard.fmt import ago, human_ms, usd
from dashboard.htmlviews import bars_html, columns_html, table_html
from dashboard.job_table import job_table
from dashboard.markup import md_text
from dashboard.models import Overview

PAGE_SIZE = 15
_STATUS_COLOURS = {JobStatus.NEW: "#9aa0a6", JobStatus.DONE: "#34a853", JobStatus.FAILED: "#d93025"}


def _headline(overview: Overview) -> None:
    counts = overview.counts
    cells = st.columns(6)
    cells[0].metric("Jobs", f"{overview.total:,}")
    cells[1].metric("In progress", f"{overview.in_progress:,}")
    cells[2].metric("Done", f"{counts.get('DONE', 0):,}")
    cells[3].metric("Failed", f"{counts.get('FAILED', 0):,}")
    cells[4].metric("Cost today", usd(overview.cost_today), help="Steps finished today (UTC).")
    cells[5].metric("Cost this week", usd(overview.cost_week), help="Since Monday 00:00 UTC.")


def _review_link(database_url: str) -> None:
    waiting = review_queue.waiting_count(database_url)
    if waiting:
        st.page_link(
            REVIEW_PAGE,
            label=f"{waiting:,} waiting for review",
            icon=":material/rule:",
            help="Jobs the quality checks held before publishing: approve, reject or redo them.",
        )


def _charts(overview: Overview) -> None:
    left, right = st.columns(2)
    with left:
        st.markdown("**Jobs by status**")
        statuses = (*STATUS_ORDER, JobStatus.NEEDS_REVIEW, JobStatus.REJECTED, JobStatus.FAILED)
        bars = [
            (
                status.value,
                overview.counts.get(status.value, 0),
                _STATUS_COLOURS.get(status, "#4285f4"),
            )
            for status in statuses
        ]
        st.html(bars_html(bars))
    with right:
        st.markdown("**Jobs per hour**, last 24 h (UTC)")
        st.html(columns_html(overview.per_hour))


def _step_times(overview: Overview) -> None:
    st.markdown("**Time per step**, completed runs of the last 7 days")
    if not overview.step_stats:
        st.caption("No completed steps yet.")
        return
    rows = [
        (stat.step, f"{stat.runs:,}", human_ms(stat.median_ms), human_ms(stat.p95_ms))
        for stat in overview.step_stats
    ]
    st.html(table_html(("step", "runs", "median", "p95"), rows))


def _failures(overview: Overview) -> None:
    st.markdown("**Recent failures**")
    if not overview.failures:
        st.caption("No failed jobs. :material/check_circle:")
        return
    for job in overview.failures:
        where = " · ".join(part for part in (job.error_step, job.error_type) if part)
        first_line = (job.error or "no error recorded").strip().splitlines()[0][:160]
        with st.container(border=True):
            st.page_link(
                JOB_PAGE,
                label=f"{md_text(job.sku)} · {md_text(job.theme)}",
                query_params={"job": str(job.id)},
                icon=":material/error:",
            )
            st.caption(f"{md_text(where or 'failed')} · {ago(job.finished_at or job.created_at)}")
            st.text(first_line)
    if overview.failure_groups:
        groups = ", ".join(
            f"{group.step}/{group.error_type} × {group.count}" for group in overview.failure_groups
        )
        st.caption(f"Last 7 days by step and error: {md_text(groups)}")


def _page() -> None:
    url = get_settings().database_url
    try:
        overview = stats.overview(url)
        if overview.total == 0:
            empty_state()
            return
        _headline(overview)
        _review_link(url)
        _charts(overview)
        times, failures = st.columns([1, 1])
        with times:
            _step_times(overview)
        with failures:
            _failures(overview)
        st.subheader("Jobs")
        job_table(page_size=PAGE_SIZE)
        st.caption(f"Updated {overview.generated_at:%H:%M:%S} UTC")
    except queries.DashboardDataError as exc:
        data_error(exc)


st.title("Overview")
# One fragment for the whole page: a refresh redraws it in place, so filters and scroll stay.
st.fragment(_page, run_every=live_refresh())()

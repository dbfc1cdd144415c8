"""Small reusable widgets: status badges, the seven-stage progress bar, empty and error states."""

from __future__ import annotations

import streamlit as st

from core.settings import get_settings
from core.tables import JobStatus
from core.urls import redact_url
from dashboard.fmt import TOTAL_STAGES, pipeline_stages, stage_number
from dashboard.markup import html_text, md_text
from dashboard.models import JobDetail
from dashboard.queries import DashboardDataError, SchemaMissing

__all__ = [
    "JOB_PAGE",
    "REVIEW_PAGE",
    "asset_checklist",
    "data_error",
    "database_label",
    "empty_state",
    "live_refresh",
    "progress_bar",
    "status_badge",
]

JOB_PAGE = "app_pages/job_detail.py"
REVIEW_PAGE = "app_pages/review.py"
LIVE_KEY = "live-refresh"
REFRESH_S = 5

_BADGE_COLOUR = {JobStatus.NEW: "gray", JobStatus.DONE: "green", JobStatus.FAILED: "red"}
_STAGE_LABEL = {
    JobStatus.NEW: "Received",
    JobStatus.BG_REMOVED: "Cutout & mask",
    JobStatus.BACKGROUND_READY: "Backgrounds",
    JobStatus.COMPOSITED: "Composites",
    JobStatus.DERIVATIVES: "Derivatives",
    JobStatus.SHOPIFY_PUSH: "Manifest",
    JobStatus.DONE: "Done",
}
_STAGE_STYLE = {
    "done": "background:#e6f4ea;border-color:#34a853;color:#1e6b34",
    "current": "background:#e8f0fe;border-color:#4285f4;color:#1a4fa0",
    "failed": "background:#fce8e6;border-color:#d93025;color:#a50e0e",
    "pending": "background:#f8f9fa;border-color:#dadce0;color:#80868b",
}
_STAGE_MARK = {"done": "✓", "current": "…", "failed": "✕", "pending": ""}


def status_badge(status: str) -> str:
    """Markdown for a coloured status badge (running statuses are blue)."""
    job_status = JobStatus(status)
    colour = _BADGE_COLOUR.get(job_status, "blue")
    return f":{colour}-badge[{job_status.value}]"


def live_refresh() -> float | None:
    """The refresh interval for live fragments: 5 s, or None when the user paused it."""
    return REFRESH_S if st.session_state.get(LIVE_KEY, True) else None


def progress_bar(detail: JobDetail) -> None:
    """The seven stages as coloured segments, then "Step k of 7 (p %)"."""
    job = detail.job
    completed = tuple(s.step for s in detail.steps if s.state in ("COMPLETED", "SKIPPED"))
    stages = pipeline_stages(job.status, job.error_step, completed)
    number = stage_number(job.status, job.error_step, completed)
    cells = []
    for stage in stages:
        label = _STAGE_LABEL[JobStatus(stage.status)]
        cells.append(
            f'<div title="{stage.status}" style="flex:1;border:2px solid;border-radius:6px;'
            f'padding:6px 8px;font-size:0.85rem;line-height:1.2;{_STAGE_STYLE[stage.state]}">'
            f"<b>{stage.number}</b> {_STAGE_MARK[stage.state]}<br>{html_text(label)}"
            f'<br><span style="font-size:0.7rem;opacity:0.8">{stage.status}</span></div>'
        )
    percent = round(100 * number / TOTAL_STAGES)
    if job.status == JobStatus.FAILED:
        summary = f"Step {number} of {TOTAL_STAGES}: failed"
    elif job.status == JobStatus.DONE:
        summary = f"Step {number} of {TOTAL_STAGES} (100%) ✓"
    else:
        summary = f"Step {number} of {TOTAL_STAGES} ({percent}%): {job.status}"
    st.html(
        '<div style="display:flex;gap:6px;margin:4px 0 6px 0">'
        + "".join(cells)
        + f'</div><div style="font-weight:600">{html_text(summary)}</div>'
    )


def asset_checklist(detail: JobDetail) -> str:
    """ "Cutout ✓ · Mask ✓ · Backgrounds (2) ✓ …", as the original dashboard listed them."""
    parts = []
    for kind, label in (
        ("original", "Original"),
        ("cutout", "Cutout"),
        ("mask", "Mask"),
        ("background", "Backgrounds"),
        ("composite", "Composites"),
        ("derivative", "Derivatives"),
        ("manifest", "Manifest"),
    ):
        count = len(detail.assets_of(kind))
        shown = f"{label} ({count})" if count > 1 else label
        parts.append(f"{shown} ✓" if count else f"{label} –")
    return " · ".join(parts)


def empty_state() -> None:
    """What a fresh installation shows instead of empty charts."""
    st.info(
        "**No jobs yet.** Run `packshot demo` for the bundled samples, or "
        "`packshot process photo.jpg --sku SKU-1` for one photo; jobs show up here within seconds.",
        icon=":material/inventory_2:",
    )


def data_error(exc: DashboardDataError) -> None:
    """Show a database problem in words, with a way to try again."""
    if isinstance(exc, SchemaMissing):
        empty_state()
        st.caption("The job tables do not exist yet; `packshot db upgrade` creates them.")
        return
    st.error(
        f"**Database unreachable.** {md_text(exc)}\n\n"
        "Check `PACKSHOT_DATABASE_URL` and that the database server is running.",
        icon=":material/cloud_off:",
    )
    st.button("Try again", key="retry-db", icon=":material/refresh:")


def database_label() -> str:
    """The database URL without credentials, for the sidebar (a SQLite URL has none)."""
    url = get_settings().database_url
    return url if url.startswith("sqlite") else redact_url(url)

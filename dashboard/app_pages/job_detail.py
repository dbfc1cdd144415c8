"""Job page (``?job=<id>``): progress, images per step, assets, timing, cost, Prefect, re-run."""

from __future__ import annotations

import uuid

import streamlit as st

from core.settings import get_settings
from dashboard import queries
from dashboard.components import JOB_PAGE, data_error, live_refresh
from dashboard.downloads import assets_card
from dashboard.events_view import job_events_section
from dashboard.fmt import ago
from dashboard.gallery import image_tabs
from dashboard.job_sections import header, timing_and_cost
from dashboard.markup import md_code, md_text
from dashboard.objects import store_ref


def _pick_job() -> None:
    st.title("Job")
    st.caption("Open a job from the overview, or pick one of the newest here.")
    try:
        recent = queries.recent_jobs(get_settings().database_url)
    except queries.DashboardDataError as exc:
        data_error(exc)
        return
    for job in recent:
        st.page_link(
            JOB_PAGE,
            label=md_text(f"{job.sku} · {job.theme} · {job.status} · {ago(job.created_at)}"),
            query_params={"job": str(job.id)},
        )


def _job_id() -> uuid.UUID | None:
    raw = st.query_params.get("job", "")
    try:
        return uuid.UUID(raw.strip())
    except ValueError:
        st.error(
            f"{md_code(raw) or 'An empty value'} is not a job id "
            "(a UUID such as the ones the overview links to)."
        )
        return None


def _body(job_id: uuid.UUID, drawn_running: bool) -> None:
    try:
        detail = queries.load_job(get_settings().database_url, job_id)
    except queries.DashboardDataError as exc:
        data_error(exc)
        return
    if detail is None:
        st.warning(f"No job {md_code(job_id)} in this database.", icon=":material/search_off:")
        st.page_link("app_pages/overview.py", label="Back to the overview")
        return
    if detail.job.running != drawn_running:
        # The job started or finished since the page was drawn: redraw it with (or without)
        # the 5-second refresh, which is fixed when the fragment is created.
        st.rerun(scope="app")
    header(detail)
    image_tabs(detail, store_ref())
    timing_and_cost(detail)
    assets_card(detail, store_ref())
    job_events_section(get_settings().database_url, job_id)


def _page() -> None:
    if "job" not in st.query_params:
        _pick_job()
        return
    job_id = _job_id()
    if job_id is None:
        return
    try:
        detail = queries.load_job(get_settings().database_url, job_id)
    except queries.DashboardDataError as exc:
        data_error(exc)
        return
    running = detail is not None and detail.job.running
    st.fragment(_body, run_every=live_refresh() if running else None)(job_id, running)


_page()

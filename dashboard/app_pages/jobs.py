"""Jobs page: the whole job table, filterable, with a choice of page size, refreshed every 5 s."""

from __future__ import annotations

import streamlit as st

from dashboard import queries
from dashboard.components import data_error, live_refresh
from dashboard.job_table import job_table, reset_page

PAGE_SIZES = (25, 50, 100)


def _page() -> None:
    page_size = st.session_state.get("jobs-page-size", PAGE_SIZES[0])
    try:
        job_table(page_size=int(page_size))
    except queries.DashboardDataError as exc:
        data_error(exc)


st.title("Jobs")
st.segmented_control(
    "Rows per page",
    PAGE_SIZES,
    default=PAGE_SIZES[0],
    key="jobs-page-size",
    persist_state="session",
    required=True,
    on_change=reset_page,
)
st.fragment(_page, run_every=live_refresh())()

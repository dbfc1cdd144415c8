"""Dashboard entry point (``packshot dashboard``): page navigation and the shared sidebar."""

from __future__ import annotations

import streamlit as st

from core.settings import get_settings
from core.urls import redact_url
from dashboard.actions import prefect_ui_base
from dashboard.components import LIVE_KEY, REFRESH_S, database_label
from dashboard.markup import md_code, md_link, md_text
from dashboard.objects import store_ref
from dashboard.signin import sidebar_panel

st.set_page_config(page_title="Packshot", page_icon="📷", layout="wide")

overview = st.Page(
    "app_pages/overview.py", title="Overview", icon=":material/dashboard:", default=True
)
jobs = st.Page("app_pages/jobs.py", title="Jobs", icon=":material/table_rows:", url_path="jobs")
job = st.Page("app_pages/job_detail.py", title="Job", icon=":material/image:", url_path="job")
review = st.Page("app_pages/review.py", title="Review", icon=":material/rule:", url_path="review")
events = st.Page(
    "app_pages/events.py", title="Events", icon=":material/outgoing_mail:", url_path="events"
)
page = st.navigation([overview, jobs, job, review, events])

# A deep link to the root with ?job=<id> opens that job's page.
if page.url_path != job.url_path and st.query_params.get("job"):
    st.switch_page(job, query_params=st.query_params.to_dict())


def _short(url: str, keep: int = 28) -> str:
    """``sqlite:///…/packshot.db``: long paths cut in the middle (the tooltip has all of it)."""
    if len(url) <= keep:
        return url
    scheme, _, rest = url.partition("://")
    return f"{scheme}://…{rest[-(keep - len(scheme) - 4) :]}"


def _sidebar() -> None:
    settings = get_settings()
    with st.sidebar:
        st.markdown("### :material/photo_camera: Packshot")
        st.toggle(
            f"Live: refresh every {REFRESH_S} s",
            value=True,
            key=LIVE_KEY,
            persist_state="session",
        )
        database, store = database_label(), redact_url(store_ref(settings).url)
        st.caption(f"Database: {md_code(_short(database))}", help=md_text(database))
        st.caption(f"Store: {md_code(_short(store))}", help=md_text(store))
        st.markdown(f"{md_link('Prefect UI', prefect_ui_base(settings))} :material/open_in_new:")
        st.divider()
        sidebar_panel()


_sidebar()
page.run()

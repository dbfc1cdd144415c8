"""The filterable, paginated, live job table shared by the overview and the jobs page.

Filters keep their values for the whole session (``persist_state``), so they survive the
5-second refreshes, a visit to a job page and the way back. Each page is one SQL query with
LIMIT/OFFSET plus one COUNT, both cached for a few seconds.
"""

from __future__ import annotations

from datetime import date

import streamlit as st

from core.settings import get_settings
from core.tables import JobStatus
from dashboard import queries
from dashboard.components import JOB_PAGE, empty_state, status_badge
from dashboard.fmt import TOTAL_STAGES, ago, human_ms, stage_number, usd
from dashboard.markup import md_text
from dashboard.models import JobFilter, JobPage, JobSummary

__all__ = ["FILTER_KEYS", "job_table", "read_filter", "reset_page"]

KEY = "jobs"
FILTER_KEYS = {name: f"{KEY}-{name}" for name in ("status", "sku", "theme", "dates", "page")}
_COLUMNS = [1.6, 1.5, 0.9, 1.7, 1.1, 0.8, 0.8, 2.4]
_HEADERS = ["Status", "SKU", "Theme", "Progress", "Created", "Time", "Cost", "Error"]


def reset_page() -> None:
    """Go back to page 1 (after the filter or the page size changed)."""
    # Dropping the widget's value (rather than setting it) lets st.pagination fall back to its
    # default without a "value set via the Session State API" warning.
    st.session_state.pop(FILTER_KEYS["page"], None)


def _clear_filters() -> None:
    st.session_state[FILTER_KEYS["status"]] = []
    st.session_state[FILTER_KEYS["sku"]] = ""
    st.session_state[FILTER_KEYS["theme"]] = []
    st.session_state[FILTER_KEYS["dates"]] = ()
    reset_page()


def _date_range(value: object) -> tuple[date | None, date | None]:
    days = [day for day in value if isinstance(day, date)] if isinstance(value, tuple) else []
    if not days:
        return None, None
    return days[0], days[-1]


def read_filter(theme_options: list[str]) -> JobFilter:
    """Draw the filter widgets and return what they select."""
    status_col, sku_col, theme_col, date_col = st.columns([2.2, 1.6, 1.4, 1.6])
    statuses = status_col.multiselect(
        "Status",
        [status.value for status in JobStatus],
        key=FILTER_KEYS["status"],
        on_change=reset_page,
        persist_state="session",
        placeholder="Any status",
    )
    sku = sku_col.text_input(
        "SKU",
        key=FILTER_KEYS["sku"],
        on_change=reset_page,
        persist_state="session",
        placeholder="contains…",
    )
    picked_themes = theme_col.multiselect(
        "Theme",
        theme_options,
        key=FILTER_KEYS["theme"],
        on_change=reset_page,
        persist_state="session",
        placeholder="Any theme",
    )
    dates = date_col.date_input(
        "Created (UTC)",
        value=[],
        key=FILTER_KEYS["dates"],
        on_change=reset_page,
        persist_state="session",
        format="YYYY-MM-DD",
    )
    date_from, date_to = _date_range(dates)
    return JobFilter(
        statuses=tuple(statuses),
        sku=sku or "",
        themes=tuple(picked_themes),
        date_from=date_from,
        date_to=date_to,
    )


def _progress(row: JobSummary) -> str:
    number = stage_number(row.status, row.error_step)
    bar = "▰" * number + "▱" * (TOTAL_STAGES - number)
    return f":red[{bar}] {number}/{TOTAL_STAGES}" if row.status == "FAILED" else f"{bar} {number}/7"


def _error_text(row: JobSummary) -> str:
    if not row.error:
        return ""
    first = row.error.strip().splitlines()[0] if row.error.strip() else ""
    first = first if len(first) <= 90 else first[:89] + "…"
    where = " · ".join(part for part in (row.error_step, row.error_type) if part)
    return f"**{md_text(where)}**: {md_text(first)}" if where else md_text(first)


def _row(row: JobSummary) -> None:
    cells = st.columns(_COLUMNS, vertical_alignment="center")
    cells[0].markdown(status_badge(row.status))
    cells[1].page_link(JOB_PAGE, label=md_text(row.sku), query_params={"job": str(row.id)})
    cells[2].text(row.theme)
    cells[3].markdown(_progress(row))
    cells[4].text(ago(row.created_at))
    cells[5].text(human_ms(row.duration_ms) if row.duration_ms is not None else "…")
    cells[6].text(usd(row.cost_usd))
    cells[7].caption(_error_text(row))


def _rows(page: JobPage) -> None:
    header = st.columns(_COLUMNS)
    for cell, title in zip(header, _HEADERS, strict=True):
        cell.markdown(f"**{title}**")
    for row in page.rows:
        _row(row)


def job_table(*, page_size: int) -> JobPage | None:
    """Filters, one page of matching jobs (newest first) and the page switcher.

    Returns:
        The page shown, or None when the database could not be read (the error is shown).
    """
    url = get_settings().database_url
    job_filter = read_filter(queries.themes(url))
    page_key = FILTER_KEYS["page"]
    page = queries.job_page(url, job_filter, int(st.session_state.get(page_key, 1)), page_size)
    if page.total == 0:
        if job_filter.active:
            st.info("No job matches these filters.", icon=":material/filter_alt_off:")
            st.button("Clear filters", on_click=_clear_filters, key=f"{KEY}-clear")
        else:
            empty_state()
        return page
    first = (page.page - 1) * page.page_size + 1
    st.caption(f"Jobs {first}–{first + len(page.rows) - 1} of {page.total:,}, newest first")
    _rows(page)
    if page.pages > 1:
        # When the stored page no longer exists (fewer matches now), the widget falls back to
        # its default: the last page, which is what the query showed.
        st.pagination(page.pages, default=page.page, key=page_key, persist_state="session")
    return page

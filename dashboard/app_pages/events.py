"""Events page: deliveries not done yet (waiting, sending) and dead ones, with "Send again"."""

from __future__ import annotations

import streamlit as st

from core.events import DeliveryState
from core.settings import get_settings
from dashboard import events_view, queries, signin
from dashboard.components import JOB_PAGE, data_error
from dashboard.events_view import DeliveryRow
from dashboard.htmlviews import table_html
from dashboard.markup import md_code, md_text

RESEND_KEY = "resend-{id}"


def _resend(database_url: str, row: DeliveryRow) -> None:
    if signin.action_blocked() is not None:  # the button was drawn disabled; never trust that
        return
    if events_view.send_again(database_url, row.id):
        st.toast(f"Event {row.event_id} queued again", icon=":material/send:")
    else:
        st.toast(f"Event {row.event_id} was no longer dead", icon=":material/info:")


def _dead(database_url: str, rows: list[DeliveryRow]) -> None:
    blocked = signin.action_blocked()
    st.markdown(f"#### Dead ({len(rows)})")
    if not rows:
        st.caption("None: every event was delivered or is still being tried.")
        return
    for row in rows:
        text, button = st.columns([5, 1], vertical_alignment="center")
        text.markdown(
            f"{md_code(row.type)} {md_code(row.event_id)} → {md_code(row.target)} · "
            f"{row.attempts} attempts · {md_text(row.answer)}"
        )
        text.page_link(JOB_PAGE, label="Open the job", query_params={"job": row.job_id})
        button.button(
            "Send again",
            key=RESEND_KEY.format(id=row.id),
            on_click=_resend,
            args=(database_url, row),
            icon=":material/send:",
            disabled=blocked is not None,
            help=blocked,
        )


def _page() -> None:
    settings = get_settings()
    st.title("Events")
    targets = len(settings.notify_targets)
    st.caption(
        f"Job events go to {targets} target(s) of PACKSHOT_NOTIFY_URL."
        if targets
        else "PACKSHOT_NOTIFY_URL is not set: no new events are written."
    )
    try:
        rows, backlog = events_view.open_deliveries(settings.database_url)
    except queries.DashboardDataError as exc:
        data_error(exc)
        return
    cells = st.columns(3)
    cells[0].metric("Not delivered yet", backlog.pending)
    oldest = backlog.oldest_pending_s
    cells[1].metric("Oldest waiting", "–" if oldest is None else f"{oldest:.0f} s")
    cells[2].metric("Dead", backlog.dead)
    _dead(settings.database_url, [r for r in rows if r.state == DeliveryState.DEAD])
    pending = [r for r in rows if r.state != DeliveryState.DEAD]
    st.markdown(f"#### Waiting ({len(pending)})")
    if pending:
        st.html(table_html(events_view.HEADERS, events_view.table_rows(pending)))
    else:
        st.caption("Nothing waiting.")


_page()

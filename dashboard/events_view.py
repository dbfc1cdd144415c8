"""Outbound events in the dashboard: a job's deliveries, the open ones, and "Send again".

Rows come from the outbox (``core.events.outbox``); targets are shown without credentials or
query values, answers and errors as text (``dashboard.markup`` through ``table_html``). The
signing secret is never read here. "Send again" is the one write: a dead delivery goes back to
``waiting`` with the same event id and body.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import streamlit as st

from core.db import session_scope
from core.events import DeliveryState, OutboxEvent, outbox
from core.tables import as_utc
from core.urls import redact_url
from dashboard.fmt import ago
from dashboard.htmlviews import table_html
from dashboard.queries import JOB_TTL_S, LIST_TTL_S, reading

__all__ = [
    "HEADERS",
    "DeliveryRow",
    "job_deliveries",
    "job_events_section",
    "open_deliveries",
    "send_again",
    "table_rows",
]

HEADERS = ("event", "target", "state", "attempts", "last answer", "next try", "created")


@dataclass(frozen=True)
class DeliveryRow:
    """One event to one target, as the dashboard shows it."""

    id: int
    event_id: str
    job_id: str
    type: str
    target: str
    state: str
    attempts: int
    last_status: int | None
    last_error: str | None
    next_attempt_at: datetime
    created_at: datetime
    delivered_at: datetime | None

    @property
    def answer(self) -> str:
        """``HTTP 200``, the error of the last try, or ``–`` before the first."""
        if self.last_error:
            return self.last_error[:300]
        return f"HTTP {self.last_status}" if self.last_status is not None else "–"

    def next_try(self, now: datetime) -> str:
        """When the sender tries again: ``now``, ``in 12 s``, or what ended the tries."""
        if self.state == DeliveryState.DELIVERED:
            return f"delivered {ago(self.delivered_at, now)}"
        if self.state == DeliveryState.DEAD:
            return "gave up (send again to retry)"
        if self.state == DeliveryState.SENDING:
            return "sending now"
        seconds = (self.next_attempt_at - now).total_seconds()
        return "now" if seconds <= 0 else f"in {_span(seconds)}"


def _span(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _row(event: OutboxEvent) -> DeliveryRow:
    return DeliveryRow(
        id=event.id or 0,
        event_id=str(event.event_id),
        job_id=str(event.job_id),
        type=event.type,
        target=redact_url(event.target_url),
        state=str(event.state),
        attempts=event.attempts,
        last_status=event.last_status,
        last_error=event.last_error,
        next_attempt_at=as_utc(event.next_attempt_at),
        created_at=as_utc(event.created_at),
        delivered_at=as_utc(event.delivered_at) if event.delivered_at else None,
    )


@st.cache_data(ttl=JOB_TTL_S, show_spinner=False, max_entries=64)
def job_deliveries(database_url: str, job_id: uuid.UUID) -> list[DeliveryRow]:
    """The job's deliveries, oldest first."""
    with reading(database_url) as session:
        return [_row(e) for e in outbox.list_for_job(session, job_id=job_id)]


@st.cache_data(ttl=LIST_TTL_S, show_spinner=False)
def open_deliveries(database_url: str) -> tuple[list[DeliveryRow], outbox.Backlog]:
    """Dead, waiting and sending deliveries (newest first), and the outbox's counts."""
    states = (DeliveryState.DEAD, DeliveryState.WAITING, DeliveryState.SENDING)
    with reading(database_url) as session:
        rows = [_row(e) for e in outbox.list_deliveries(session, states=states)]
        return rows, outbox.backlog(session)


def send_again(database_url: str, row_id: int) -> bool:
    """Requeue a dead delivery (same event id); False if it was no longer dead."""
    with session_scope(database_url) as session:
        done = outbox.requeue(session, row_id=row_id)
    job_deliveries.clear()
    open_deliveries.clear()
    return done


def table_rows(rows: list[DeliveryRow], now: datetime | None = None) -> list[tuple[object, ...]]:
    """The cells of ``HEADERS`` for each row (plain text: ``table_html`` escapes them)."""
    moment = now or datetime.now(UTC)
    return [
        (
            f"{r.type} {r.event_id}",
            r.target,
            r.state,
            r.attempts,
            r.answer,
            r.next_try(moment),
            ago(r.created_at, moment),
        )
        for r in rows
    ]


def job_events_section(database_url: str, job_id: uuid.UUID) -> None:
    """The job page's "Events" card: each delivery with attempts, last answer and next try."""
    st.markdown("#### Events")
    rows = job_deliveries(database_url, job_id)
    if not rows:
        st.caption("No events for this job (PACKSHOT_NOTIFY_URL unset, or it has not ended).")
        return
    st.html(table_html(HEADERS, table_rows(rows)))
    if any(r.state == DeliveryState.DEAD for r in rows):
        st.page_link("app_pages/events.py", label="Dead deliveries can be sent again on Events")

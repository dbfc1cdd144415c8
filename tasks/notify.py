"""The outbound events a flow run caused, for its summary in the Prefect UI."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from functools import partial

from sqlmodel import Session

from core.events import outbox
from core.tables import as_utc
from core.urls import redact_url
from tasks._runtime import run_in_db

__all__ = ["CausedEvent", "caused_events"]


@dataclass(frozen=True)
class CausedEvent:
    """One event of the job, to one target (redacted), and where its delivery stands."""

    event_id: str
    type: str
    target: str
    state: str


def _since(session: Session, *, job_id: uuid.UUID, since: datetime) -> list[CausedEvent]:
    return [
        CausedEvent(str(row.event_id), row.type, redact_url(row.target_url), str(row.state))
        for row in outbox.list_for_job(session, job_id=job_id)
        if as_utc(row.created_at) >= since
    ]


def caused_events(job_id: str, since: datetime) -> list[CausedEvent]:
    """The job's events created at or after ``since`` (the start of this run)."""
    work = partial(_since, job_id=uuid.UUID(job_id), since=as_utc(since))
    return run_in_db(work, what="list caused events")

"""Writes the outbox rows in the very transaction that moves a job to a status with an event.

A ``before_flush`` listener on every ``sqlmodel.Session`` looks at the ``Job`` rows being
flushed: one whose ``status`` changed to a status of ``EVENT_TYPES`` gets one ``OutboxEvent``
per target of ``PACKSHOT_NOTIFY_URL``, added to the same flush. Every code path that changes a
status (``core.jobs``, ``core.crashes``, those still to come) is covered without calling
anything, the rows commit or roll back with the status, and a status written again unchanged
(a repeated hook, a re-run of a DONE job) sends nothing. ``core.db.get_engine`` installs it.
"""

from __future__ import annotations

import threading
import uuid
from typing import Any

from sqlalchemy import event, inspect, select
from sqlmodel import Session

from core.events.body import event_type, job_body
from core.events.links import manifest_url
from core.events.table import OutboxEvent
from core.settings import Settings, get_settings
from core.tables import Job, utcnow

__all__ = ["install", "new_events"]

_lock = threading.Lock()
_installed: list[bool] = []


def install() -> None:
    """Listen to every session's flushes (idempotent, cheap: called for every engine)."""
    with _lock:
        if not _installed:
            event.listen(Session, "before_flush", _before_flush)
            _installed.append(True)


def _value(status: object) -> str:
    return str(getattr(status, "value", status))


def _changed_to(session: Session, job: Job) -> str | None:
    """The event type of the job's new status, if this flush changes it to one; else None."""
    state = inspect(job)
    history = state.attrs.status.history
    if not history.added:
        return None
    new = _value(history.added[-1])
    kind = event_type(new)
    if kind is None or state.key is None:  # a new row: it reaches the status now
        return kind
    if history.deleted:
        old: object = history.deleted[0]
    else:  # the old value was not loaded (expired): ask the row itself
        table = Job.__table__  # type: ignore[attr-defined]
        query = select(table.c.status).where(table.c.id == job.id)
        old = session.connection().execute(query).scalar()
    return kind if old is None or _value(old) != new else None


def new_events(job: Job, kind: str, settings: Settings) -> list[OutboxEvent]:
    """One row per target for ``job``'s event ``kind``: one event id, one body, for all."""
    event_id, now = uuid.uuid4(), utcnow()
    body = job_body(
        job,
        event_id=event_id,
        type_=kind,
        created_at=now,
        manifest_url=manifest_url(job.manifest_key, settings),
    )
    return [
        OutboxEvent(
            event_id=event_id,
            job_id=job.id,
            target_url=target,
            type=kind,
            body=body,
            created_at=now,
            retry_since=now,
            next_attempt_at=now,
        )
        for target in settings.notify_targets
    ]


def _before_flush(session: Session, _context: Any, _instances: Any) -> None:
    settings = get_settings()
    if not settings.notify_targets:
        return
    for obj in (*session.new, *session.dirty):
        if isinstance(obj, Job):
            kind = _changed_to(session, obj)
            if kind is not None:
                session.add_all(new_events(obj, kind, settings))

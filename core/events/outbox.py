"""The outbox's queries: claim due deliveries, record how they went, list and requeue them.

Every function takes the session as a keyword argument and leaves committing to the caller.

Claiming is safe with several senders on one database. Due rows are picked with
``SELECT … FOR UPDATE SKIP LOCKED`` (PostgreSQL; SQLite has no row locks and ignores it) and
claimed by one conditional ``UPDATE`` that checks again that each row is still due: a row
another sender claimed in between is no longer due and stays theirs. A claim counts the
attempt and sets a lease (``next_attempt_at``); a sender that dies mid-send leaves the row
``sending`` until the lease lapses, then any sender tries again (at least once delivery).

Order per job: a delivery is due only when no earlier delivery of the same job to the same
target is still ``waiting`` or ``sending``.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Table, and_, bindparam, func, select, update
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import Session

from core.events.table import DeliveryState, OutboxEvent
from core.tables import as_utc, utcnow

__all__ = [
    "Backlog",
    "Claimed",
    "Result",
    "backlog",
    "claim_due",
    "list_deliveries",
    "list_for_job",
    "record_results",
    "requeue",
]

_OPEN = (DeliveryState.WAITING.value, DeliveryState.SENDING.value)


def _table() -> Table:
    return OutboxEvent.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Claimed:
    """One delivery a sender now owns: attempt ``attempts`` of event ``event_id`` to ``target``."""

    id: int
    event_id: uuid.UUID
    job_id: uuid.UUID
    target: str
    type: str
    body: str
    attempts: int
    retry_since: datetime


@dataclass(frozen=True)
class Result:
    """How one attempt went: ``status`` is the HTTP status when one came back."""

    claimed: Claimed
    delivered: bool
    status: int | None = None
    error: str | None = None


def _due(outbox: Table, now: datetime) -> ColumnElement[bool]:
    earlier = outbox.alias("earlier")
    blocked = (
        select(earlier.c.id)
        .where(
            earlier.c.job_id == outbox.c.job_id,
            earlier.c.target_url == outbox.c.target_url,
            earlier.c.id < outbox.c.id,
            earlier.c.state.in_(_OPEN),
        )
        .exists()
    )
    return and_(outbox.c.state.in_(_OPEN), outbox.c.next_attempt_at <= now, ~blocked)


def claim_due(
    session: Session, *, limit: int, lease_s: float, now: datetime | None = None
) -> list[Claimed]:
    """Claim up to ``limit`` due deliveries, oldest due first, each for one attempt."""
    moment = now or utcnow()
    outbox = _table()
    due = _due(outbox, moment)
    candidates = (
        select(outbox.c.id)
        .where(due)
        .order_by(outbox.c.next_attempt_at, outbox.c.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    ids = list(session.execute(candidates).scalars())
    if not ids:
        return []
    claim = (
        update(outbox)
        .where(outbox.c.id.in_(ids), due)
        .values(
            state=DeliveryState.SENDING.value,
            attempts=outbox.c.attempts + 1,
            next_attempt_at=moment + timedelta(seconds=lease_s),
            last_attempt_at=moment,
        )
        .returning(
            outbox.c.id,
            outbox.c.event_id,
            outbox.c.job_id,
            outbox.c.target_url,
            outbox.c.type,
            outbox.c.body,
            outbox.c.attempts,
            outbox.c.retry_since,
        )
    )
    rows = session.execute(claim).all()
    claimed = [
        Claimed(
            id=row.id,
            event_id=row.event_id,
            job_id=row.job_id,
            target=row.target_url,
            type=row.type,
            body=row.body,
            attempts=row.attempts,
            retry_since=as_utc(row.retry_since),
        )
        for row in rows
    ]
    return sorted(claimed, key=lambda c: c.id)


def record_results(
    session: Session,
    *,
    results: list[Result],
    retry_at: dict[int, datetime | None],
    now: datetime | None = None,
) -> None:
    """Write each attempt's outcome: delivered, waiting until ``retry_at[id]``, or dead (None).

    A success always sticks (the receiver has the event); a failure is written only while the
    claim is still this attempt's, so a late sender cannot undo a newer attempt's result. One
    statement per kind of outcome, executed for all rows at once (a batch is one round trip).
    """
    moment = now or utcnow()
    outbox = _table()
    delivered = [{"row": r.claimed.id, "code": r.status} for r in results if r.delivered]
    failed = [
        {
            "row": r.claimed.id,
            "tried": r.claimed.attempts,
            "next_state": (
                DeliveryState.WAITING if retry_at.get(r.claimed.id) else DeliveryState.DEAD
            ).value,
            "next_at": retry_at.get(r.claimed.id) or moment,
            "code": r.status,
            "error": (r.error or "")[:2000],
        }
        for r in results
        if not r.delivered
    ]
    if delivered:
        success = (
            update(outbox)
            .where(outbox.c.id == bindparam("row"))
            .values(
                state=DeliveryState.DELIVERED.value,
                delivered_at=moment,
                last_status=bindparam("code"),
                last_error=None,
            )
        )
        session.execute(success, delivered)
    if failed:
        failure = (
            update(outbox)
            .where(
                outbox.c.id == bindparam("row"),
                outbox.c.state == DeliveryState.SENDING.value,
                outbox.c.attempts == bindparam("tried"),
            )
            .values(
                state=bindparam("next_state"),
                next_attempt_at=bindparam("next_at"),
                last_status=bindparam("code"),
                last_error=bindparam("error"),
            )
        )
        session.execute(failure, failed)


def requeue(session: Session, *, row_id: int, now: datetime | None = None) -> bool:
    """Send a dead delivery again (same event id, same body), with a new give-up window."""
    moment = now or utcnow()
    outbox = _table()
    statement = (
        update(outbox)
        .where(outbox.c.id == row_id, outbox.c.state == DeliveryState.DEAD.value)
        .values(
            state=DeliveryState.WAITING.value,
            next_attempt_at=moment,
            retry_since=moment,
        )
    )
    return bool(session.execute(statement).rowcount)  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Backlog:
    """What the outbox still holds: deliveries not yet done, the oldest one's age, dead ones."""

    pending: int
    oldest_pending_s: float | None
    dead: int


def backlog(session: Session, *, now: datetime | None = None) -> Backlog:
    """Counts for ``/healthz`` and the dashboard."""
    moment = now or utcnow()
    outbox = _table()
    pending, oldest = session.execute(
        select(func.count(), func.min(outbox.c.created_at)).where(outbox.c.state.in_(_OPEN))
    ).one()
    dead = session.execute(
        select(func.count()).where(outbox.c.state == DeliveryState.DEAD.value)
    ).scalar_one()
    age = None if oldest is None else round((moment - as_utc(oldest)).total_seconds(), 1)
    return Backlog(pending=int(pending), oldest_pending_s=age, dead=int(dead))


def list_for_job(session: Session, *, job_id: uuid.UUID) -> list[OutboxEvent]:
    """The job's deliveries, in the order they were created."""
    query = select(OutboxEvent).where(OutboxEvent.job_id == job_id).order_by(OutboxEvent.id)  # type: ignore[arg-type]
    return list(session.scalars(query))


def list_deliveries(
    session: Session, *, states: tuple[DeliveryState, ...], limit: int = 200
) -> list[OutboxEvent]:
    """Deliveries in ``states``, newest first."""
    query = (
        select(OutboxEvent)
        .where(OutboxEvent.state.in_([s.value for s in states]))  # type: ignore[attr-defined]
        .order_by(OutboxEvent.id.desc())  # type: ignore[union-attr]
        .limit(limit)
    )
    return list(session.scalars(query))

"""The event outbox table: one row per event and target, and its delivery states.

A row is written in the transaction that moves its job to a status that has an event
(``core.events.record``), so an event exists if and only if that status change was committed.
The sender (``core.events.sender``) moves it ``waiting → sending → delivered``, back to
``waiting`` after a failed try, or to ``dead`` once the give-up window has passed.
Schema changes go through a migration (0005 created it).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import BigInteger, Column, DateTime, Index, Integer, String, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from core.tables import utcnow

__all__ = ["MAX_BODY_BYTES", "DeliveryState", "OutboxEvent"]

# docs/events.md: the body of an event is never larger than 64 KB.
MAX_BODY_BYTES = 64 * 1024


class DeliveryState(StrEnum):
    """Where one delivery (an event to one target) stands."""

    WAITING = "waiting"
    SENDING = "sending"
    DELIVERED = "delivered"
    DEAD = "dead"


def _tz(nullable: bool = True) -> Column[datetime]:
    return Column(DateTime(timezone=True), nullable=nullable)


class OutboxEvent(SQLModel, table=True):
    """One event for one target. ``id`` orders the events of a job; ``event_id`` is public."""

    __tablename__ = "outbox_event"
    __table_args__ = (
        UniqueConstraint("event_id", "target_url", name="uq_outbox_event_target"),
        Index("ix_outbox_state_next", "state", "next_attempt_at"),
        Index("ix_outbox_job_target", "job_id", "target_url", "id"),
    )

    id: int | None = Field(
        default=None,
        sa_column=Column(
            BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True
        ),
    )
    event_id: uuid.UUID = Field(default_factory=uuid.uuid4)
    job_id: uuid.UUID = Field(foreign_key="job.id", ondelete="CASCADE")
    target_url: str = Field(sa_column=Column(Text, nullable=False))
    type: str = Field(sa_type=String(32))
    body: str = Field(sa_column=Column(Text, nullable=False))
    created_at: datetime = Field(default_factory=utcnow, sa_column=_tz(False))
    # Start of the give-up window: created_at, or when an operator sent a dead event again.
    retry_since: datetime = Field(default_factory=utcnow, sa_column=_tz(False))
    state: DeliveryState = Field(default=DeliveryState.WAITING, sa_type=String(16))
    attempts: int = Field(default=0, sa_column=Column(Integer, nullable=False))
    # When the next try is due; while ``sending``, when the claim lapses (a sender died).
    next_attempt_at: datetime = Field(default_factory=utcnow, sa_column=_tz(False))
    last_attempt_at: datetime | None = Field(default=None, sa_column=_tz())
    last_status: int | None = None
    last_error: str | None = Field(default=None, sa_column=Column(Text))
    delivered_at: datetime | None = Field(default=None, sa_column=_tz())

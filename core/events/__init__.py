"""Outbound events: the outbox table, the rows written with a status change, and the sender.

docs/events.md is the contract and the operator's guide.
"""

from __future__ import annotations

from core.events.body import EVENT_TYPES, PING_TYPE, event_type
from core.events.record import install
from core.events.table import MAX_BODY_BYTES, DeliveryState, OutboxEvent

__all__ = [
    "EVENT_TYPES",
    "MAX_BODY_BYTES",
    "PING_TYPE",
    "DeliveryState",
    "OutboxEvent",
    "event_type",
    "install",
]

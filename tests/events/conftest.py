"""Fixtures of the event tests: a loopback receiver, settings that send it events quickly."""

from __future__ import annotations

import pytest

from core.settings import Settings
from tests.events.helpers import SECRET, configure, receiver
from tests.events.receiver import Receiver

__all__ = ["fast", "receiver"]


@pytest.fixture
def fast(monkeypatch: pytest.MonkeyPatch, receiver: Receiver) -> Settings:
    """Events to ``receiver``, signed, retried after milliseconds instead of seconds."""
    return configure(
        monkeypatch,
        notify_url=receiver.url,
        notify_secret=SECRET,
        notify_allow_private="true",
        notify_backoff_first_s="0.01",
        notify_backoff_max_s="0.05",
        notify_timeout_s="2",
        db_retry_s="30",
    )

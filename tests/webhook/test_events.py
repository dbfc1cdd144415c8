"""The webhook runs the event sender beside its dispatcher; /healthz shows the outbox."""

from __future__ import annotations

import pytest

from core.settings import get_settings
from tests.events.helpers import configure, finish, make_job, receiver, rows
from tests.events.receiver import Receiver

__all__ = ["receiver"]  # the fixture
from tests.webhook.conftest import make_settings, serve_app


def test_sender_runs_in_the_webhook_and_healthz_shows_the_outbox(
    monkeypatch: pytest.MonkeyPatch, receiver: Receiver
) -> None:
    configure(
        monkeypatch,
        notify_url=receiver.url,
        notify_allow_private="true",
        notify_secret="k1",
        notify_poll_s="0.05",
        notify_backoff_first_s="30",
    )
    url = get_settings().database_url
    with serve_app(make_settings()) as live:
        finish(url, make_job(url, sku="A"))
        live.wait_for(lambda: len(receiver.successes()) == 1)
        events = live.get("/healthz").json()["events"]
        assert events["enabled"] and events["alive"] and events["targets"] == 1
        assert (events["backlog"], events["oldestWaitingAgeS"], events["dead"]) == (0, None, 0)
        assert events["sender"]["delivered"] == 1
        receiver.stop()
        finish(url, make_job(url, sku="B"))
        live.wait_for(lambda: any(r.last_error for r in rows(url)))
        doc = live.get("/healthz").json()
        assert doc["status"] == "ok" and doc["events"]["backlog"] == 1
        assert doc["events"]["oldestWaitingAgeS"] >= 0
        assert "ConnectError" in doc["events"]["sender"]["lastError"]
        task = live.app.state.ctx.notifier_task
    assert task.done() and not task.cancelled()  # stopped by the lifespan, not cut off


def test_no_sender_without_targets(monkeypatch: pytest.MonkeyPatch) -> None:
    configure(monkeypatch)
    with serve_app(make_settings()) as live:
        events = live.get("/healthz").json()["events"]
    assert events == {
        "enabled": False,
        "targets": 0,
        "alive": False,
        "backlog": 0,
        "oldestWaitingAgeS": None,
        "dead": 0,
    }

"""The sender on PostgreSQL: two senders share one outbox; the database restarts mid-send."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator

import pytest

from core.events.sender import Sender
from core.settings import Settings
from tests.events.helpers import SECRET, configure, finish, make_job, rows
from tests.events.receiver import Receiver
from tests.helpers.postgres import start_outage, temporary_database


@pytest.fixture
def pg(monkeypatch: pytest.MonkeyPatch, receiver: Receiver) -> Iterator[Settings]:
    with temporary_database() as url:
        yield configure(
            monkeypatch,
            database_url=url,
            notify_url=receiver.url,
            notify_secret=SECRET,
            notify_allow_private="true",
            notify_backoff_first_s="0.01",
            notify_backoff_max_s="0.05",
            notify_batch="4",
            notify_poll_s="0.01",
            db_retry_s="30",
        )


def _wait_until_closed(url: str, limit_s: float = 120.0) -> None:
    """A guard against a hang, not a timing assertion."""
    end = time.monotonic() + limit_s
    while time.monotonic() < end:
        if all(r.state == "delivered" for r in rows(url)):
            return
        time.sleep(0.05)
    raise AssertionError([(r.id, r.state, r.last_error) for r in rows(url)])


def test_two_senders_never_send_the_same_attempt(pg: Settings, receiver: Receiver) -> None:
    url = pg.database_url
    for n in range(16):
        finish(url, make_job(url, sku=f"SKU-{n}"))
    receiver.answers = [500] * 8
    receiver.delay_s = 0.01
    stop = threading.Event()
    senders = [Sender(pg), Sender(pg)]
    threads = [threading.Thread(target=s.run, args=(stop,)) for s in senders]
    for thread in threads:
        thread.start()
    try:
        _wait_until_closed(url)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
        for sender in senders:
            sender.close()
    requests = Counter(r.event_id for r in receiver.received)
    successes = Counter(r.event_id for r in receiver.successes())
    for row in rows(url):
        assert successes[str(row.event_id)] == 1
        assert requests[str(row.event_id)] == row.attempts  # no attempt went out twice
    assert sum(requests.values()) == 16 + 8
    assert all(s.status()["delivered"] for s in senders)  # both did share the work


def test_database_restarted_mid_send_loses_and_repeats_nothing(
    pg: Settings, receiver: Receiver, db_warnings: list[object]
) -> None:
    url = pg.database_url
    for n in range(3):
        finish(url, make_job(url, sku=f"SKU-{n}"))
    receiver.delay_s = 1.0  # the answers come while the database is down
    outage = start_outage(url, 2.0, when=lambda: receiver.started >= 3)
    sender = Sender(pg)
    try:
        assert sender.run_once() == 3
    finally:
        sender.close()
    record = outage.join()
    assert record.started_at is not None and record.terminated >= 0
    assert db_warnings, "the record step should have waited for the database"
    assert sorted(r.event_id for r in receiver.received) == sorted(
        str(r.event_id) for r in rows(url)
    )
    assert [(r.state, r.attempts) for r in rows(url)] == [("delivered", 1)] * 3

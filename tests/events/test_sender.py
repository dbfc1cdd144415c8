"""The sender against a real receiver on loopback: headers, signatures, retries, order, safety."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import random
import time
import uuid

import pytest

from core.db import session_scope
from core.events import outbox
from core.events.sender import Sender, post_event, send_ping
from core.events.transport import new_client
from core.settings import Settings
from core.signing import signature
from tests.events.helpers import SECRET, configure, drain, fail, finish, make_job, rows
from tests.events.receiver import Received, Receiver


def _verify(secret: str, received: Received) -> bool:
    """An independent receiver-side check: stdlib hmac over "<t>.<raw body>"."""
    parts = [p.split("=", 1) for p in received.headers["x-packshot-signature"].split(",")]
    stamp = next(v for k, v in parts if k == "t")
    expected = hmac.new(secret.encode(), f"{stamp}.".encode() + received.body, hashlib.sha256)
    return any(hmac.compare_digest(expected.hexdigest(), v) for k, v in parts if k == "v1")


def test_signature_known_answer() -> None:
    header = signature([SECRET], b'{"id":"e1","type":"ping"}', 1_700_000_000)
    assert header == (
        "t=1700000000,v1=6d88d4470495a0ecc68400f6da2f0828e69a6e2d09eeaf2bec112db4d373a0a5"
    )


def test_event_arrives_signed_with_the_contract_headers(fast: Settings, receiver: Receiver) -> None:
    url = fast.database_url
    job_id = make_job(url)
    finish(url, job_id)
    sender = Sender(fast)
    try:
        assert sender.run_once() == 1
    finally:
        sender.close()
    (got,) = receiver.received
    event = got.event
    assert got.headers["content-type"] == "application/json"
    assert got.headers["x-packshot-event"] == "job.done" == event["type"]
    assert got.headers["x-packshot-delivery"] == event["id"] == str(rows(url)[0].event_id)
    assert event["job"]["jobId"] == str(job_id)  # type: ignore[index]
    assert _verify(SECRET, got) and not _verify("another-secret", got)
    (row,) = rows(url)
    assert (row.state, row.attempts, row.last_status) == ("delivered", 1, 200)


def test_rotation_signs_with_both_secrets(
    fast: Settings, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = configure(monkeypatch, notify_secret="new-secret-2", notify_secret_previous=SECRET)
    event_id, answer = send_ping(settings, receiver.url)
    assert answer.ok and answer.status == 200
    (got,) = receiver.received
    assert got.event["type"] == "ping" == got.headers["x-packshot-event"]
    assert got.event_id == got.event["id"] == str(event_id)
    assert got.headers["x-packshot-signature"].count("v1=") == 2
    assert _verify("new-secret-2", got) and _verify(SECRET, got)


def test_failing_then_down_then_back_gets_each_event_once(
    fast: Settings, receiver: Receiver
) -> None:
    url = fast.database_url
    job_ids = [make_job(url, sku=f"SKU-{n}") for n in range(4)]
    for job_id in job_ids:
        finish(url, job_id)
    receiver.answers = [500, 503, 429, 404]  # the first answers fail …
    sender = Sender(fast, rng=random.Random(1))
    try:
        assert sender.run_once() == 4  # one batch: every first answer fails
        receiver.stop()  # … then it is down …
        for _ in range(500):
            sender.run_once()
            down = rows(url)
            if all("ConnectError" in (r.last_error or "") for r in down):
                break
            time.sleep(0.01)
        assert all(r.state == "waiting" and r.attempts >= 2 for r in down)
        receiver.start()  # … then back
        drain(sender, url)
    finally:
        sender.close()
    successes = receiver.successes()
    assert sorted(r.event_id for r in successes) == sorted(str(r.event_id) for r in rows(url))
    for row in rows(url):
        tries = [r for r in receiver.received if r.event_id == str(row.event_id)]
        assert len({t.body for t in tries}) == 1  # same id, same body on every attempt
        assert row.state == "delivered" and row.attempts >= len(tries)
    assert len(receiver.received) == len(successes) + 4


def test_events_of_a_job_arrive_in_order(fast: Settings, receiver: Receiver) -> None:
    url = fast.database_url
    job_id = make_job(url)
    fail(url, job_id)
    with session_scope(url) as s:
        from core import jobs

        jobs.start_job(s, job_id=job_id)  # a re-run …
    finish(url, job_id)  # … that succeeds: job.failed, then job.done
    other = make_job(url, sku="OTHER")
    finish(url, other)
    receiver.answers = [503, 503, 503]
    sender = Sender(fast, rng=random.Random(2))
    try:
        drain(sender, url)
    finally:
        sender.close()
    kinds = [r.event["type"] for r in receiver.received if r.event["job"]["jobId"] == str(job_id)]  # type: ignore[index]
    first_done = kinds.index("job.done")
    assert set(kinds[:first_done]) == {"job.failed"} and set(kinds[first_done:]) == {"job.done"}
    ok = [r.event["type"] for r in receiver.successes() if r.event["job"]["jobId"] == str(job_id)]  # type: ignore[index]
    assert ok == ["job.failed", "job.done"]


def test_gives_up_after_the_window_then_send_again_keeps_the_id(
    monkeypatch: pytest.MonkeyPatch, fast: Settings, receiver: Receiver
) -> None:
    settings = configure(monkeypatch, notify_give_up_s="0.001")
    url = settings.database_url
    finish(url, make_job(url))
    receiver.default = 500
    sender = Sender(settings)
    try:
        drain(sender, url)
        (dead,) = rows(url)
        assert (dead.state, dead.attempts, dead.last_status) == ("dead", 1, 500)
        assert dead.last_error and dead.last_error.startswith("HTTP 500")
        with session_scope(url) as s:
            assert outbox.requeue(s, row_id=dead.id or 0)
        receiver.default = 200
        drain(sender, url)
    finally:
        sender.close()
    (row,) = rows(url)
    assert (row.state, row.attempts, row.event_id) == ("delivered", 2, dead.event_id)
    assert [r.event_id for r in receiver.received] == [str(dead.event_id)] * 2


def test_redirects_are_not_followed(fast: Settings, receiver: Receiver) -> None:
    receiver.answers = [302]
    _, answer = send_ping(fast, receiver.url)
    assert not answer.ok and answer.status == 302 and "redirect" in (answer.error or "")
    assert [r.path for r in receiver.received] == ["/hooks/packshot"]


def test_total_deadline(
    monkeypatch: pytest.MonkeyPatch, fast: Settings, receiver: Receiver
) -> None:
    settings = configure(monkeypatch, notify_timeout_s="0.3")
    receiver.delay_s = 1.0
    _, answer = send_ping(settings, receiver.url)
    assert not answer.ok and answer.error == "no answer within 0.3 s"


def test_private_targets_are_refused(
    monkeypatch: pytest.MonkeyPatch, fast: Settings, receiver: Receiver
) -> None:
    settings = configure(monkeypatch, notify_allow_private="false")
    url = settings.database_url
    finish(url, make_job(url))
    sender = Sender(settings)
    try:
        sender.run_once()
    finally:
        sender.close()
    assert receiver.received == []
    (row,) = rows(url)
    assert row.state == "waiting"
    assert (row.last_error or "").startswith("refused: event target host 127.0.0.1")
    assert "PACKSHOT_NOTIFY_ALLOW_PRIVATE" in (row.last_error or "")


@pytest.mark.parametrize(
    "addresses", [["10.1.2.3"], ["169.254.169.254"], ["8.8.8.8", "192.168.0.2"], ["::1"]]
)
def test_a_target_resolving_to_any_private_address_is_refused(
    fast: Settings, receiver: Receiver, addresses: list[str]
) -> None:
    """core.netguard checks every address; the refusal names the events' own setting."""
    client = new_client(
        allow_private=False, connect_timeout_s=2, timeout_s=2, resolver=lambda h, p: addresses
    )
    with client:
        answer = post_event(
            client,
            "https://hooks.example/in",
            "{}",
            event_id=uuid.uuid4(),
            type_="ping",
            secrets=[SECRET],
            timeout_s=2,
        )
    assert not answer.ok and answer.status is None
    assert answer.error and answer.error.startswith("refused: event target host hooks.example")
    assert "PACKSHOT_NOTIFY_ALLOW_PRIVATE=true" in answer.error


def test_connects_to_the_address_it_checked(receiver: Receiver) -> None:
    """The name is resolved once per connection, by our resolver; the socket goes there."""
    looked_up: list[str] = []

    def resolver(host: str, port: int) -> list[str]:
        looked_up.append(host)
        return ["127.0.0.1"]

    client = new_client(allow_private=True, connect_timeout_s=2, timeout_s=2, resolver=resolver)
    with client:
        response = client.post(f"http://receiver.invalid:{receiver.port}/x", content=b"{}")
    assert response.status_code == 200 and looked_up == ["receiver.invalid"]
    assert receiver.received[0].headers["host"] == f"receiver.invalid:{receiver.port}"


def test_a_name_that_does_not_resolve_is_a_failed_try(fast: Settings) -> None:
    def unresolvable(host: str, port: int) -> list[str]:
        raise OSError("Name or service not known")

    client = new_client(allow_private=True, connect_timeout_s=2, timeout_s=2, resolver=unresolvable)
    with client:
        answer = post_event(client, "https://gone.example/", "{}", event_id=uuid.uuid4(),
                            type_="ping", secrets=[], timeout_s=2)  # fmt: skip
    assert not answer.ok and "cannot resolve host gone.example" in (answer.error or "")


def test_nothing_is_sent_without_targets(
    monkeypatch: pytest.MonkeyPatch, receiver: Receiver
) -> None:
    settings = configure(monkeypatch, notify_allow_private="true")
    url = settings.database_url
    finish(url, make_job(url))
    fail(url, make_job(url, sku="F"))
    sender = Sender(settings)
    try:
        assert sender.run_once() == 0
    finally:
        sender.close()
    assert rows(url) == [] and receiver.received == []


def test_the_secret_is_nowhere_but_in_the_signature(
    fast: Settings, receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    url = fast.database_url
    finish(url, make_job(url))
    receiver.answers = [500]
    sender = Sender(fast)
    with caplog.at_level(logging.DEBUG, logger="packshot"):
        try:
            drain(sender, url)
        finally:
            sender.close()
    seen = [caplog.text, json.dumps(sender.status()), *(repr(r) for r in rows(url))]
    seen += [r.body.decode() for r in receiver.received]
    assert all(SECRET not in text for text in seen)
    assert SECRET not in repr(fast)


def test_the_receiver_snippet_of_the_docs_verifies_a_real_event(
    fast: Settings, receiver: Receiver
) -> None:
    import re
    from pathlib import Path

    docs = (Path(__file__).parents[2] / "docs" / "events.md").read_text()
    namespace: dict[str, object] = {}
    exec(re.search(r"```python\n(.*?)```", docs, re.DOTALL).group(1), namespace)  # type: ignore[union-attr]
    verify = namespace["verify"]
    assert send_ping(fast, receiver.url)[1].ok
    (got,) = receiver.received
    header = got.headers["x-packshot-signature"]
    assert verify(SECRET, header, got.body) == got.event  # type: ignore[operator]
    with pytest.raises(ValueError, match="signature mismatch"):
        verify("not-the-secret", header, got.body)  # type: ignore[operator]
    with pytest.raises(ValueError, match="timestamp"):
        verify(SECRET, header, got.body, now=time.time() + 3600)  # type: ignore[operator]
    assert "6d88d4470495a0ecc68400f6da2f0828e69a6e2d09eeaf2bec112db4d373a0a5" in docs

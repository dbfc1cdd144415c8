"""Events in the dashboard through AppTest: the job page's deliveries, the Events page, resend."""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlmodel import Session, select

from core.db import get_engine, session_scope
from core.events import OutboxEvent
from core.tables import utcnow
from tests.dashboard import hostile
from tests.dashboard.rendered import assert_inert, shown

TARGET = "https://hooks.example/packshot?token=s3cr3t-query"


def _add(url: str, job_id: uuid.UUID, **fields: object) -> OutboxEvent:
    now = utcnow()
    values: dict[str, object] = {
        "type": "job.done",
        "body": "{}",
        "created_at": now - timedelta(minutes=3),
        "retry_since": now,
        "next_attempt_at": now,
    }
    row = OutboxEvent(job_id=job_id, target_url=TARGET, **{**values, **fields})
    with session_scope(url) as s:
        s.add(row)
        s.flush()
        s.refresh(row)
        return row


def _html(at) -> str:
    return " ".join(node.value for node in at.get("html"))


def test_job_page_lists_the_jobs_events(app, hostile_job, settings):
    url = settings.database_url
    delivered = _add(url, hostile_job, state="delivered", attempts=1, last_status=204,
                     delivered_at=utcnow())  # fmt: skip
    waiting = _add(url, hostile_job, type="job.failed", state="waiting", attempts=3,
                   last_status=503, last_error=f"HTTP 503: {hostile.FIRST_LINE}",
                   next_attempt_at=utcnow() + timedelta(minutes=10))  # fmt: skip
    at = app(job=str(hostile_job))
    html = _html(at)
    assert any(md.value == "#### Events" for md in at.markdown)
    assert f"job.done {delivered.event_id}" in html and "HTTP 204" in html
    assert f"job.failed {waiting.event_id}" in html and ">3</td>" in html
    assert "in 10 min" in html or "in 9 min" in html
    assert "&lt;img src=x&gt;" in html and "<img src=x>" not in html  # the answer is text
    assert "s3cr3t-query" not in html and "token=***" in html


def test_job_without_events_says_why(app, done_job):
    at = app(job=str(done_job))
    assert any("No events for this job" in c.value for c in at.caption)


def test_events_page_lists_dead_and_waiting_and_sends_again(app, done_job, failed_job, settings):
    url = settings.database_url
    dead = _add(url, failed_job, type="job.failed", state="dead", attempts=17,
                last_error=f"HTTP 500: {hostile.FIRST_LINE} :red[boom]")  # fmt: skip
    waiting = _add(url, done_job, state="waiting", attempts=2, last_error="ConnectError: refused")
    _add(url, done_job, type="job.done", state="delivered", attempts=1, last_status=200)
    at = app()
    at.switch_page("app_pages/events.py").run()
    assert not at.exception
    pending, oldest, dead_count = (m.value for m in at.metric)
    assert (pending, dead_count) == ("1", "1") and int(oldest.removesuffix(" s")) >= 180
    assert any(md.value == "#### Dead (1)" for md in at.markdown)
    line = next(md.value for md in at.markdown if str(dead.event_id) in md.value)
    assert "17 attempts" in shown(line) and f"HTTP 500: {hostile.FIRST_LINE}" in shown(line)
    assert_inert(line, hostile.RAW)  # the receiver's answer shows as text, never as markup
    assert f"job.done {waiting.event_id}" in _html(at)
    assert "s3cr3t-query" not in _html(at) + " ".join(md.value for md in at.markdown)
    at.button(key=f"resend-{dead.id}").click().run()
    assert not at.exception
    with Session(get_engine(url)) as s:
        again = s.exec(select(OutboxEvent).where(OutboxEvent.id == dead.id)).one()
    assert (again.state, again.event_id, again.attempts) == ("waiting", dead.event_id, 17)
    assert any(md.value == "#### Dead (0)" for md in at.markdown)
    assert f"job.failed {dead.event_id}" in _html(at)

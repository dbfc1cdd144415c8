"""Helpers of the event tests: settings, jobs that reach DONE or FAILED, the outbox rows."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest
from sqlmodel import Session, select

from core import jobs
from core.db import get_engine, session_scope, upgrade_schema
from core.events import OutboxEvent
from core.events.sender import Sender
from core.schemas import ImageJobSpec
from core.settings import Settings, get_settings
from tests.events.receiver import Receiver, receiving

SECRET = "whsec_test_rotation_1"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A receiver on a free loopback port (import it into a test module to use it)."""
    with receiving() as r:
        yield r


def configure(monkeypatch: pytest.MonkeyPatch, **env: str) -> Settings:
    """Settings from the test environment plus ``env`` (PACKSHOT_ + upper-cased name)."""
    for name, value in env.items():
        monkeypatch.setenv(f"PACKSHOT_{name.upper()}", value)
    get_settings.cache_clear()
    settings = get_settings()
    upgrade_schema(settings.database_url)
    return settings


def make_job(url: str, sku: str = "SKU-1", theme: str = "default") -> uuid.UUID:
    spec = ImageJobSpec(
        sku=sku, image_url="https://cdn.example/a.jpg", sha256="c" * 64, theme=theme
    )
    with session_scope(url) as s:
        job, _ = jobs.get_or_create_job(s, spec=spec)
        jobs.start_job(s, job_id=job.id)
        return job.id


def finish(url: str, job_id: uuid.UUID) -> None:
    with session_scope(url) as s:
        jobs.finish_job(s, job_id=job_id, manifest_key=f"manifests/x/{job_id}.json")


def fail(url: str, job_id: uuid.UUID, message: str = "boom") -> None:
    with session_scope(url) as s:
        jobs.fail_job(s, job_id=job_id, step="download", error_type="InputError", message=message)


def rows(url: str, job_id: uuid.UUID | None = None) -> list[OutboxEvent]:
    with Session(get_engine(url)) as s:
        query = select(OutboxEvent).order_by(OutboxEvent.id)  # type: ignore[arg-type]
        if job_id is not None:
            query = query.where(OutboxEvent.job_id == job_id)
        return list(s.exec(query).all())


def drain(sender: Sender, url: str, *, rounds: int = 500) -> None:
    """Run the sender until no delivery is waiting or sending (bounded by rounds, not time)."""
    for _ in range(rounds):
        if sender.run_once() == 0:
            if all(r.state in ("delivered", "dead") for r in rows(url)):
                return
            time.sleep(0.01)
    raise AssertionError(f"deliveries still open: {[(r.id, r.state) for r in rows(url)]}")

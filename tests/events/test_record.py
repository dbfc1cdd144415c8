"""Outbox rows are written with the status change, in its transaction, once per target."""

from __future__ import annotations

import json
import uuid
from urllib.parse import urlsplit

import pytest
from sqlmodel import Session, select

from core import crashes, jobs
from core.db import get_engine, session_scope
from core.events import MAX_BODY_BYTES, DeliveryState, OutboxEvent, event_type
from core.events.body import encode
from core.schemas import ImageJobSpec
from core.settings import get_settings
from core.tables import Job, JobStatus

SHA = "b" * 64
TARGETS = "https://a.example/hook,https://b.example/hook"


def _job(url: str, sku: str = "SKU-1") -> uuid.UUID:
    spec = ImageJobSpec(sku=sku, image_url="https://cdn.example/a.jpg", sha256=SHA)
    with session_scope(url) as s:
        job, _ = jobs.get_or_create_job(s, spec=spec)
        jobs.start_job(s, job_id=job.id)
        return job.id


def _events(url: str, job_id: uuid.UUID) -> list[OutboxEvent]:
    with Session(get_engine(url)) as s:
        query = select(OutboxEvent).where(OutboxEvent.job_id == job_id).order_by(OutboxEvent.id)
        return list(s.exec(query).all())


@pytest.fixture
def targets(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    monkeypatch.setenv("PACKSHOT_NOTIFY_URL", TARGETS)
    get_settings.cache_clear()
    return TARGETS.split(",")


def test_done_writes_one_event_per_target(db_url: str, targets: list[str]) -> None:
    job_id = _job(db_url)
    with session_scope(db_url) as s:
        jobs.finish_job(s, job_id=job_id, manifest_key="manifests/SKU-1/b-default.json")
    rows = _events(db_url, job_id)
    assert [r.target_url for r in rows] == targets
    assert rows[0].event_id == rows[1].event_id and rows[0].body == rows[1].body
    assert {r.state for r in rows} == {DeliveryState.WAITING} and rows[0].attempts == 0
    body = json.loads(rows[0].body)
    assert body["id"] == str(rows[0].event_id) and body["type"] == "job.done"
    assert body["job"]["jobId"] == str(job_id) and body["job"]["status"] == "DONE"
    assert body["job"]["manifestKey"] == "manifests/SKU-1/b-default.json"
    manifest_url = urlsplit(body["job"]["manifestUrl"])
    assert manifest_url.scheme == "file"
    assert manifest_url.path.endswith("/store/manifests/SKU-1/b-default.json")
    assert set(body["job"]) == {
        "jobId", "sku", "sha256", "theme", "status", "error", "costUsd",
        "manifestKey", "manifestUrl", "quality",
    }  # fmt: skip


def test_failed_once_even_when_written_twice(db_url: str, targets: list[str]) -> None:
    job_id = _job(db_url)
    for _ in range(2):
        with session_scope(db_url) as s:
            jobs.fail_job(s, job_id=job_id, step="download", error_type="InputError", message="x")
    rows = _events(db_url, job_id)
    assert [r.type for r in rows] == ["job.failed"] * len(targets)
    assert json.loads(rows[0].body)["job"]["error"] == "x"


def test_no_event_without_targets_or_status_change(db_url: str) -> None:
    job_id = _job(db_url)
    with session_scope(db_url) as s:
        jobs.finish_job(s, job_id=job_id, manifest_key=None)
    assert _events(db_url, job_id) == []


def test_rolled_back_status_leaves_no_event(db_url: str, targets: list[str]) -> None:
    job_id = _job(db_url)
    with pytest.raises(RuntimeError), session_scope(db_url) as s:
        jobs.finish_job(s, job_id=job_id, manifest_key=None)
        s.flush()  # the rows exist in this transaction …
        assert len(s.exec(select(OutboxEvent)).all()) == len(targets)
        raise RuntimeError("… and go with it")
    assert _events(db_url, job_id) == []
    with Session(get_engine(db_url)) as s:
        assert s.get(Job, job_id).status == JobStatus.NEW  # type: ignore[union-attr]


def test_crash_failure_and_rerun_send_again(db_url: str, targets: list[str]) -> None:
    job_id = _job(db_url)
    with session_scope(db_url) as s:
        jobs.set_flow_run(s, job_id=job_id, flow_run_id="run-1")
    with session_scope(db_url) as s:
        assert crashes.fail_crashed(
            s, job_id=job_id, flow_run_id="run-1", error_type="Crashed", message="lost"
        )
    with session_scope(db_url) as s:
        jobs.start_job(s, job_id=job_id)  # FAILED -> NEW: a re-run
    with session_scope(db_url) as s:
        jobs.finish_job(s, job_id=job_id, manifest_key=None)
    rows = _events(db_url, job_id)
    assert [r.type for r in rows[:: len(targets)]] == ["job.failed", "job.done"]
    assert len({r.event_id for r in rows}) == 2


def test_status_expired_before_change_is_compared_with_the_row(
    db_url: str, targets: list[str]
) -> None:
    job_id = _job(db_url)
    with session_scope(db_url) as s:
        jobs.finish_job(s, job_id=job_id, manifest_key=None)
    with session_scope(db_url) as s:
        job = s.get(Job, job_id)
        assert job is not None
        s.expire(job, ["status"])
        job.status = JobStatus.DONE  # unchanged: no second event
    assert len(_events(db_url, job_id)) == len(targets)


def test_public_base_url_links_the_manifest(
    monkeypatch: pytest.MonkeyPatch, targets: list[str]
) -> None:
    monkeypatch.setenv("PACKSHOT_PUBLIC_BASE_URL", "https://cdn.example/packshots/")
    get_settings.cache_clear()
    url = get_settings().database_url
    from core.db import upgrade_schema

    upgrade_schema(url)
    job_id = _job(url)
    with session_scope(url) as s:
        jobs.finish_job(s, job_id=job_id, manifest_key="manifests/S 1/b-default.json")
    body = json.loads(_events(url, job_id)[0].body)
    assert (
        body["job"]["manifestUrl"] == "https://cdn.example/packshots/manifests/S%201/b-default.json"
    )


def test_event_types_come_from_statuses() -> None:
    assert event_type(JobStatus.DONE) == "job.done"
    assert event_type(JobStatus.FAILED) == "job.failed"
    assert event_type("NEEDS_REVIEW") == "job.needs_review"
    assert event_type("REJECTED") == "job.rejected"
    assert event_type(JobStatus.SHOPIFY_PUSH) is None


def test_oversized_text_is_cut_never_the_body() -> None:
    quality = {
        "verdict": "review",
        "score": 0.2,
        "checks": [{"name": f"c{i}", "detail": "d" * 5000} for i in range(40)],
    }
    document = {"id": "e", "type": "job.failed", "createdAt": "t", "job": {
        "jobId": "j", "error": "é" * 100_000, "quality": quality}}  # fmt: skip
    raw = encode(document)
    assert len(raw.encode()) <= MAX_BODY_BYTES
    job = json.loads(raw)["job"]
    assert job["error"].endswith("…[truncated]") and job["quality"]["verdict"] == "review"
    small = {"id": "e", "type": "job.done", "createdAt": "t", "job": {"error": "short"}}
    assert json.loads(encode(small)) == small


def test_s3_store_presigns_the_manifest_for_the_configured_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from urllib.parse import parse_qs

    from moto import mock_aws

    from core.events.links import _store, manifest_url

    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": "/nonexistent",
        "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent",
        "PACKSHOT_STORE_URL": "s3://shots/prod",
        "PACKSHOT_MANIFEST_URL_EXPIRES_S": "90000",
    }.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    _store.cache_clear()
    with mock_aws():
        url = manifest_url("manifests/S1/abc-default.json", get_settings())
    _store.cache_clear()
    assert url is not None
    parts = urlsplit(url)
    assert parts.path.endswith("/prod/manifests/S1/abc-default.json")
    assert parse_qs(parts.query)["X-Amz-Expires"] == ["90000"]
    assert manifest_url(None, get_settings()) is None

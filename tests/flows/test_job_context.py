"""A run is told its job once: by id, with its URL read from the table and its theme resolved once."""

from __future__ import annotations

import base64
import hashlib
import json
import uuid

import pytest
from prefect import get_client
from sqlmodel import select

from core import themes
from core.db import session_scope, upgrade_schema
from core.jobs import enqueue_job
from core.schemas import ImageJobSpec
from core.settings import get_settings
from core.tables import Job, JobStep
from flows.process_image import process_image
from flows.trigger import JobRef
from tests.helpers.http_server import Reply, Script, serve
from tests.helpers.images import jpeg_bytes, product_photo

pytestmark = pytest.mark.xdist_group("prefect")

PHOTO = jpeg_bytes(product_photo())
SHA = hashlib.sha256(PHOTO).hexdigest()
PASSWORD, TOKEN = "pa55-word-in-url", "signed-value-0451"


@pytest.fixture
def cdn():
    script = Script()
    script.add("/media/photo.jpg", Reply(200, PHOTO, {"content-type": "image/jpeg"}))
    with serve(script) as base:
        yield base, script


def _queued_job(url: str, theme: str = "default") -> Job:
    """A job as the webhook stores it."""
    spec = ImageJobSpec(sku="SKU-CTX", image_url=url, sha256=SHA, theme=theme)
    upgrade_schema(get_settings().database_url)
    with session_scope(get_settings().database_url) as session:
        job_id = enqueue_job(session, spec=spec).job_id
        job = session.get(Job, job_id)
        assert job is not None
        session.expunge(job)
        return job


def test_a_webhook_job_runs_by_id_and_its_url_secrets_never_reach_prefect(
    cdn, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PACKSHOT_SECRET_KEY", "a-key-that-seals-source-urls-at-rest")
    get_settings.cache_clear()
    base, script = cdn
    url = base.replace("http://", f"http://buyer:{PASSWORD}@") + f"/media/photo.jpg?token={TOKEN}"
    job = _queued_job(url)
    params = JobRef.model_validate(job).parameters()
    assert set(params) == {"sku", "theme", "job_id"}

    result = process_image(**params)

    assert result["status"] == "DONE" and result["jobId"] == str(job.id)
    # The worker fetched the whole URL it read (and decrypted) from the job table.
    path, headers = script.received[0]
    assert path == f"/media/photo.jpg?token={TOKEN}"
    assert headers["Authorization"] == "Basic " + base64.b64encode(
        f"buyer:{PASSWORD}".encode()
    ).decode("ascii")
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(uuid.UUID(str(result["flowRunId"])))
    exposed = json.dumps(run.parameters) + json.dumps(result)
    with session_scope(get_settings().database_url) as session:
        stored = session.get(Job, job.id)
        assert stored is not None
        rows = session.exec(select(JobStep).where(JobStep.job_id == job.id)).all()
        exposed += stored.source_url + (stored.source_secret or "")
        exposed += "".join(row.details or "" for row in rows)
    assert PASSWORD not in exposed and TOKEN not in exposed


def test_the_theme_is_resolved_once_per_run(cdn, monkeypatch: pytest.MonkeyPatch) -> None:
    base, _ = cdn
    calls: list[object] = []
    original = themes.load_themes

    def counting(themes_file=None):  # type: ignore[no-untyped-def]
        calls.append(themes_file)
        return original(themes_file)

    monkeypatch.setattr(themes, "load_themes", counting)
    job = _queued_job(f"{base}/media/photo.jpg")
    result = process_image(**JobRef.model_validate(job).parameters())
    assert result["status"] == "DONE"
    assert len(calls) == 1  # the flow resolved it; no step looked it up again


def test_a_job_whose_theme_is_gone_fails_on_the_job_as_bad_input(cdn) -> None:
    base, _ = cdn
    job = _queued_job(f"{base}/media/photo.jpg", theme="retired")
    with pytest.raises(Exception, match="unknown theme 'retired'"):
        process_image(**JobRef.model_validate(job).parameters())
    with session_scope(get_settings().database_url) as session:
        stored = session.get(Job, job.id)
        assert stored is not None
        assert (stored.status, stored.error_type) == ("FAILED", "InputError")


def test_an_ad_hoc_run_needs_a_job_id_or_an_image() -> None:
    with pytest.raises(Exception, match="needs job_id, or sku and image_url"):
        process_image(sku="SKU-CTX")

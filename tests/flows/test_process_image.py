"""The per-image flow end to end on Prefect's test server: local store, S3, retries, re-runs."""

from __future__ import annotations

import hashlib
import json
import uuid
from pathlib import Path

import pytest
from sqlmodel import select

from core.db import session_scope
from core.errors import InputError
from core.settings import get_settings
from core.storage import FlakyStore, LocalStore, MemoryStore
from core.tables import Job, JobStep
from flows.process_image import process_image
from tasks import _runtime
from tests.helpers.deployed import deploy
from tests.helpers.http_server import Reply, Script, serve
from tests.helpers.images import jpeg_bytes, product_photo

pytestmark = pytest.mark.xdist_group("prefect")

PHOTO = jpeg_bytes(product_photo())
SHA = hashlib.sha256(PHOTO).hexdigest()


@pytest.fixture
def cdn():
    script = Script()
    script.add("/media/photo.jpg", Reply(200, PHOTO, {"content-type": "image/jpeg"}))
    with serve(script) as base:
        yield base, script


def _steps(job_id: str) -> dict[str, JobStep]:
    with session_scope(get_settings().database_url) as session:
        rows = session.exec(select(JobStep).where(JobStep.job_id == uuid.UUID(job_id))).all()
    return {f"{r.step}#{r.variant}" if r.variant else r.step: r for r in rows}


def _job(job_id: str) -> Job:
    with session_scope(get_settings().database_url) as session:
        job = session.get(Job, uuid.UUID(job_id))
        assert job is not None
        return job


def test_one_photo_end_to_end_on_the_local_store(cdn, packshot_env: Path) -> None:
    base, _ = cdn
    result = process_image(sku="SKU-1", image_url=f"{base}/media/photo.jpg", sha256=SHA)
    assert result["status"] == "DONE"
    store = packshot_env / "store"
    files = sorted(p.relative_to(store).as_posix() for p in store.rglob("*") if p.is_file())
    assert f"originals/SKU-1/{SHA}.jpg" in files
    assert f"manifests/SKU-1/{SHA}-default.json" in files
    produced = [f for f in files if not f.startswith(("originals/", "manifests/"))]
    assert len(produced) == 24  # cutout, mask, 2 backgrounds, 2 composites, 18 derivatives
    manifest = json.loads((store / f"manifests/SKU-1/{SHA}-default.json").read_text())
    assert manifest["metadata"]["totalAssets"] == 24
    assert manifest["metadata"]["totalFileSize"] == sum(
        (store / f).stat().st_size for f in produced
    )
    hero = next(d for d in manifest["assets"]["derivatives"] if d["key"].endswith("1_hero.avif"))
    assert (hero["width"], hero["height"], hero["contentType"]) == (1200, 1200, "image/avif")
    steps = _steps(str(result["jobId"]))
    assert {s.state for s in steps.values()} == {"COMPLETED"}
    assert set(steps) == {
        "download",
        "remove_background",
        "generate_backgrounds",
        "composite#1",
        "composite#2",
        "derivatives#1",
        "derivatives#2",
        "quality",
        "manifest",
        "publish",
    }
    assert steps["publish"].provider == "none" and "disabled" in (steps["publish"].details or "")
    from prefect.artifacts import Artifact

    artifact = Artifact.get("packshot-sku-1-default")  # the Prefect UI's summary of the run
    assert artifact is not None and "| remove_background | COMPLETED |" in str(artifact.data)
    assert f"composites/default/SKU-1/{SHA}_1x1_2_master.jpg" in str(artifact.data)
    for name, row in steps.items():  # each duration is measured inside its step's recorded span
        span_ms = (row.finished_at - row.started_at).total_seconds() * 1000
        assert row.duration_ms is not None and row.duration_ms <= span_ms + 1, (name, span_ms)
    assert steps["remove_background"].duration_ms > 0 and steps["derivatives#1"].duration_ms > 0


def test_numeric_sku_is_text_and_sha_is_computed_when_missing(cdn) -> None:
    base, _ = cdn
    result = process_image(sku=12345, image_url=f"{base}/media/photo.jpg")  # type: ignore[arg-type]
    assert result["status"] == "DONE" and result["sku"] == "12345" and result["sha256"] == SHA
    assert _steps(str(result["jobId"]))["download"].state == "COMPLETED"


def test_rerun_skips_finished_steps_and_another_theme_reuses_the_cutout(cdn) -> None:
    base, script = cdn
    url = f"{base}/media/photo.jpg"
    first = process_image(sku="SKU-2", image_url=url, sha256=SHA)
    again = process_image(sku="SKU-2", image_url=url, sha256=SHA)
    assert again["jobId"] == first["jobId"] and again["status"] == "DONE"
    assert {s.state for s in _steps(str(again["jobId"])).values() if s.step != "manifest"} <= {
        "SKIPPED",
        "COMPLETED",
    }
    assert _steps(str(again["jobId"]))["remove_background"].state == "SKIPPED"
    assert script.hits["/media/photo.jpg"] == 1  # the original was reused, not fetched again
    white = process_image(sku="SKU-2", image_url=url, sha256=SHA, theme="white")
    steps = _steps(str(white["jobId"]))
    assert white["jobId"] != first["jobId"]
    assert steps["remove_background"].state == "SKIPPED"
    assert steps["generate_backgrounds"].state == "COMPLETED"
    assert "composite#2" not in steps  # white has one variant


def test_transient_store_failures_are_retried(cdn, packshot_env: Path) -> None:
    base, _ = cdn
    flaky = FlakyStore(LocalStore(packshot_env / "store"), failures=2)
    _runtime.use_store(flaky)
    result = process_image(sku="SKU-3", image_url=f"{base}/media/photo.jpg", sha256=SHA)
    assert result["status"] == "DONE"
    download = _steps(str(result["jobId"]))["download"]
    assert download.attempts == 3 and download.state == "COMPLETED"


def test_bad_input_fails_at_once_without_a_manifest(cdn) -> None:
    base, script = cdn
    wrong = "0" * 64
    with pytest.raises(InputError, match="sha256 mismatch"):
        process_image(sku="SKU-4", image_url=f"{base}/media/photo.jpg", sha256=wrong)
    with session_scope(get_settings().database_url) as session:
        job = session.exec(select(Job).where(Job.sku == "SKU-4")).one()
        assert (job.status, job.error_step, job.error_type) == ("FAILED", "download", "InputError")
        assert job.manifest_key is None
    assert _steps(str(job.id))["download"].attempts == 1
    assert script.hits["/media/photo.jpg"] == 1


def test_http_500s_are_retried_then_fail_clearly(packshot_env: Path) -> None:
    script = Script()
    script.add("/media/down.jpg", Reply(500, b"oops"))
    memory = MemoryStore()
    _runtime.use_store(memory)
    with serve(script) as base, pytest.raises(Exception, match="HTTP 500"):
        process_image(sku="SKU-5", image_url=f"{base}/media/down.jpg", sha256=SHA)
    assert script.hits["/media/down.jpg"] == 4  # first try + 3 retries
    with session_scope(get_settings().database_url) as session:
        job = session.exec(select(Job).where(Job.sku == "SKU-5")).one()
    assert job.status == "FAILED" and job.error_type == "ProviderUnavailable"
    assert _steps(str(job.id))["download"].state == "FAILED"
    assert not list(memory.list("manifests/"))


def test_flow_on_s3(cdn, monkeypatch: pytest.MonkeyPatch) -> None:
    import boto3
    from moto import mock_aws

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("PACKSHOT_STORE_URL", "s3://packshot-assets/prod")
    get_settings.cache_clear()
    _runtime.reset()
    base, _ = cdn
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="packshot-assets")
        result = process_image(sku="SKU-S3", image_url=f"{base}/media/photo.jpg", sha256=SHA)
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket="packshot-assets")["Contents"]]
        hero = s3.head_object(
            Bucket="packshot-assets", Key=f"prod/derivatives/default/SKU-S3/{SHA}/1_hero.webp"
        )
        manifest = s3.head_object(
            Bucket="packshot-assets", Key=f"prod/manifests/SKU-S3/{SHA}-default.json"
        )
    assert result["status"] == "DONE"
    assert len(keys) == 26 and all(k.startswith("prod/") for k in keys)
    assert hero["ContentType"] == "image/webp"
    assert hero["CacheControl"] == "public, max-age=31536000, immutable"
    assert manifest["ContentType"] == "application/json"


def test_redo_every_step_redoes_every_step(cdn, packshot_env: Path) -> None:
    """The dashboard's "Redo every step": a run of the deployment with force=True, executed as a
    worker executes it, computes every step again and leaves the same set of files."""
    from prefect import get_client
    from prefect.flow_engine import run_flow

    from flows.trigger import PROCESS_IMAGE_DEPLOYMENT, JobRef, trigger_job_sync

    base, script = cdn
    first = process_image(sku="FORCE-1", image_url=f"{base}/media/photo.jpg", sha256=SHA)
    job_id = str(first["jobId"])
    before = _steps(job_id)
    store = packshot_env / "store"
    files = sorted(p.relative_to(store).as_posix() for p in store.rglob("*") if p.is_file())
    deploy(PROCESS_IMAGE_DEPLOYMENT, "flows/process_image.py:process_image")

    run_id = trigger_job_sync(JobRef.model_validate(_job(job_id)), rerun=True, force=True)
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(uuid.UUID(run_id))
    assert run.parameters["force"] is True and run.parameters["job_id"] == job_id
    again = run_flow(process_image, flow_run=run, parameters=run.parameters)

    assert again["jobId"] == first["jobId"] and again["status"] == "DONE"  # type: ignore[index]
    after = _steps(job_id)
    assert set(after) == set(before)
    assert {name: row.state for name, row in after.items()} == dict.fromkeys(after, "COMPLETED")
    for name, row in after.items():  # a new attempt of each step, after the first run ended
        assert row.started_at > before[name].finished_at, name
    assert script.hits["/media/photo.jpg"] == 2  # the source was fetched again
    assert sorted(p.relative_to(store).as_posix() for p in store.rglob("*") if p.is_file()) == files
    job = _job(job_id)
    assert (job.status, job.flow_run_id) == ("DONE", run_id)
    with session_scope(get_settings().database_url) as session:
        from core.tables import Asset

        assets = session.exec(select(Asset).where(Asset.job_id == uuid.UUID(job_id))).all()
    assert len(assets) == 26 and len({a.key for a in assets}) == 26  # same files, no duplicates
    manifest = json.loads((store / f"manifests/FORCE-1/{SHA}-default.json").read_text())
    assert manifest["metadata"]["totalAssets"] == 24

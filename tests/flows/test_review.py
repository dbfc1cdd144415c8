"""The quality gate holds a job before publishing; a person approves or rejects it.

The drawn test photo's bottle covers about a fifth of the frame. With the smallest allowed
product share raised to half the photo (``PACKSHOT_QUALITY_FOREGROUND_MIN``), the mask check
``foreground_min`` fails on it and the verdict is ``review``; with the defaults it passes.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlmodel import select
from typer.testing import CliRunner

from core.db import session_scope, upgrade_schema
from core.jobs import enqueue_job
from core.schemas import ImageJobSpec, parse_quality
from core.settings import get_settings
from core.tables import Job, JobStatus, JobStep
from deployments.cli import app
from flows.process_image import process_image
from flows.trigger import PROCESS_IMAGE_DEPLOYMENT, JobRef, trigger_job_sync
from tests.helpers.deployed import deploy, stand_in_worker
from tests.helpers.images import jpeg_bytes, product_photo

pytestmark = pytest.mark.xdist_group("prefect")

PHOTO = jpeg_bytes(product_photo())
SHA = hashlib.sha256(PHOTO).hexdigest()


def _review(monkeypatch: pytest.MonkeyPatch, mode: str, *, strict: bool = True) -> None:
    """``PACKSHOT_REVIEW=mode``; ``strict`` makes the drawn photo fail ``foreground_min``."""
    monkeypatch.setenv("PACKSHOT_REVIEW", mode)
    if strict:
        monkeypatch.setenv("PACKSHOT_QUALITY_FOREGROUND_MIN", "0.5")
    get_settings.cache_clear()


def _job(job_id: object) -> tuple[Job, dict[str, JobStep]]:
    with session_scope(get_settings().database_url) as session:
        job = session.get(Job, uuid.UUID(str(job_id)))
        assert job is not None
        rows = session.exec(select(JobStep).where(JobStep.job_id == job.id)).all()
        session.expunge_all()
    return job, {f"{r.step}#{r.variant}" if r.variant else r.step: r for r in rows}


def _held(photo_url: str, sku: str = "SKU-RV") -> Job:
    result = process_image(sku=sku, image_url=photo_url, sha256=SHA)
    assert result["status"] == "NEEDS_REVIEW"
    return _job(result["jobId"])[0]


def test_a_review_verdict_holds_the_job_after_its_manifest(
    photo_url: str, monkeypatch: pytest.MonkeyPatch, packshot_env: Path
) -> None:
    _review(monkeypatch, "auto")
    job = _held(photo_url)
    job, steps = _job(job.id)
    quality = parse_quality(job.quality)
    assert quality is not None and quality.verdict == "review"
    assert [c.name for c in quality.failed()] == ["foreground_min"]
    assert {"product_fidelity#1", "product_fidelity#2", "derivatives"} <= {
        c.name for c in quality.checks if c.passed
    }
    assert steps["quality"].state == "COMPLETED" and steps["manifest"].state == "COMPLETED"
    assert "publish" not in steps  # nothing was published
    assert job.finished_at is not None and job.cost_usd == 0.0
    manifest = json.loads((packshot_env / "store" / str(job.manifest_key)).read_text())
    assert manifest["quality"]["verdict"] == "review"
    assert manifest["quality"]["checks"][0].keys() == {
        "name",
        "value",
        "threshold",
        "passed",
        "detail",
    }


def test_off_records_the_verdict_and_publishes(photo_url: str, monkeypatch) -> None:
    _review(monkeypatch, "off")
    result = process_image(sku="SKU-OFF", image_url=photo_url, sha256=SHA)
    job, steps = _job(result["jobId"])
    assert job.status == JobStatus.DONE and steps["publish"].state == "COMPLETED"
    assert parse_quality(job.quality).verdict == "review"  # type: ignore[union-attr]


def test_auto_publishes_a_passing_job_and_always_holds_it(photo_url: str, monkeypatch) -> None:
    _review(monkeypatch, "auto", strict=False)
    result = process_image(sku="SKU-AUT", image_url=photo_url, sha256=SHA)
    assert result["status"] == "DONE"
    _review(monkeypatch, "always", strict=False)
    job = _held(photo_url, "SKU-ALW")
    assert parse_quality(job.quality).verdict == "pass"  # type: ignore[union-attr]


def test_approval_through_the_cli_publishes_the_job_on_a_worker(
    photo_url: str, monkeypatch: pytest.MonkeyPatch, prefect_server: str
) -> None:
    _review(monkeypatch, "auto")
    job = _held(photo_url, "SKU-APR")
    deployment = deploy(PROCESS_IMAGE_DEPLOYMENT, "flows/process_image.py:process_image")
    with stand_in_worker(deployment, process_image) as worker:
        result = CliRunner().invoke(app, ["review", "approve", str(job.id), "--by", "alice"])
        assert result.exit_code == 0, result.output
        run_id = uuid.UUID(result.output.split("flow run ")[1].split()[0])
        worker.wait(run_id, timeout=120)
    job, steps = _job(job.id)
    assert job.status == JobStatus.DONE
    assert (job.review_decision, job.review_by) == ("approved", "alice")
    assert job.review_at is not None and steps["publish"].state == "COMPLETED"
    again = CliRunner().invoke(app, ["review", "approve", str(job.id)])
    assert again.exit_code == 2 and "not waiting for review" in again.output


def test_rejection_needs_a_reason_and_ends_the_job(photo_url: str, monkeypatch) -> None:
    _review(monkeypatch, "auto")
    job = _held(photo_url, "SKU-REJ")
    listed = CliRunner().invoke(app, ["review", "list", "--json"])
    [entry] = json.loads(listed.output)
    assert entry["jobId"] == str(job.id) and entry["quality"]["verdict"] == "review"
    blank = CliRunner().invoke(app, ["review", "reject", str(job.id), "--reason", "  "])
    assert blank.exit_code == 2 and "needs a reason" in blank.output
    done = CliRunner().invoke(
        app, ["review", "reject", str(job.id), "--reason", "boardwalk left in", "--by", "bo"]
    )
    assert done.exit_code == 0, done.output
    job, steps = _job(job.id)
    assert (job.status, job.review_reason, job.review_by) == ("REJECTED", "boardwalk left in", "bo")
    assert "publish" not in steps
    assert json.loads(CliRunner().invoke(app, ["review", "list", "--json"]).output) == []


def test_packshot_process_exits_3_for_a_held_job(tmp_path: Path, prefect_server: str) -> None:
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(PHOTO)
    command = [sys.executable, "-c", "from deployments.cli import main; main()"]
    result = subprocess.run(
        [*command, "process", str(photo), "--sku", "SKU-CLI"],
        capture_output=True,
        text=True,
        timeout=170,
        check=False,
        env=os.environ | {"PACKSHOT_REVIEW": "auto", "PACKSHOT_QUALITY_FOREGROUND_MIN": "0.5"},
    )
    assert result.returncode == 3, result.stderr
    assert result.stderr.startswith("held for review: ") and "covers" in result.stderr
    assert "Traceback" not in result.stderr


# --- under a worker: the run suspends for the decision, the Prefect way ---------------------


def _worker_held_job(photo_url: str, sku: str) -> tuple[Job, uuid.UUID]:
    """A job delivered as the webhook does, run by the deployment until it suspends."""
    from prefect import get_client

    spec = ImageJobSpec(sku=sku, image_url=photo_url, sha256=SHA)
    upgrade_schema(get_settings().database_url)
    with session_scope(get_settings().database_url) as session:
        job_id = enqueue_job(session, spec=spec).job_id
        job = session.get(Job, job_id)
        assert job is not None
        ref = JobRef.model_validate(job)
    run_id = uuid.UUID(trigger_job_sync(ref))

    def suspended() -> bool:
        with get_client(sync_client=True) as client:
            state = client.read_flow_run(run_id).state
        return state is not None and state.is_paused()

    _wait(suspended, f"the run to suspend (job {job_id})", timeout=60)
    job, _ = _job(job_id)
    assert job.status == JobStatus.NEEDS_REVIEW and job.flow_run_id == str(run_id)
    return job, run_id


def _wait(check: Callable[[], bool], what: str, timeout: float = 150.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            import re as _re

            m = _re.search(r"job ([0-9a-f-]{36})", what)
            extra = _job(m.group(1))[0].model_dump() if m else ""
            raise AssertionError(f"waited {timeout:.0f} s for {what}: {extra}")
        time.sleep(0.3)


def _status_is(job_id: uuid.UUID, status: str) -> Callable[[], bool]:
    return lambda: _job(job_id)[0].status == status


@pytest.fixture
def worker(prefect_server: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    _review(monkeypatch, "auto")
    deployment = deploy(PROCESS_IMAGE_DEPLOYMENT, "flows/process_image.py:process_image")
    with stand_in_worker(deployment, process_image):
        yield


def test_a_suspended_run_is_resumed_by_a_cli_approval_and_publishes(photo_url, worker) -> None:
    from prefect import get_client

    job, run_id = _worker_held_job(photo_url, "SKU-SUS")
    result = CliRunner().invoke(app, ["review", "approve", str(job.id), "--by", "cy"])
    assert result.exit_code == 0 and f"publishing in flow run {run_id}" in result.output
    _wait(_status_is(job.id, "DONE"), "the job to be published")
    job, steps = _job(job.id)
    assert (job.review_decision, job.review_by) == ("approved", "cy")
    assert steps["publish"].state == "COMPLETED"
    with get_client(sync_client=True) as client:
        _wait(lambda: client.read_flow_run(run_id).state.is_completed(), "the run to complete")


def test_the_prefect_ui_form_decides_a_suspended_run(photo_url, worker) -> None:
    from prefect.flow_runs import resume_flow_run

    job, run_id = _worker_held_job(photo_url, "SKU-FORM")
    # What the Prefect UI sends when someone fills in the run's ReviewInput form.
    answer = {"decision": "reject", "reason": "label cut off", "by": "dee"}
    resume_flow_run(run_id, run_input=answer)
    _wait(_status_is(job.id, "REJECTED"), "the form's decision")
    job, steps = _job(job.id)
    assert (job.review_reason, job.review_by) == ("label cut off", "dee")
    assert "publish" not in steps


def test_a_cli_rejection_cancels_the_suspended_run(photo_url, worker) -> None:
    from prefect import get_client

    job, run_id = _worker_held_job(photo_url, "SKU-CAN")
    result = CliRunner().invoke(app, ["review", "reject", str(job.id), "--reason", "blurry"])
    assert result.exit_code == 0, result.output
    with get_client(sync_client=True) as client:
        state = client.read_flow_run(run_id).state
    assert state is not None and state.is_cancelled() and "blurry" in (state.message or "")
    assert _job(job.id)[0].status == "REJECTED"


def test_a_waiting_job_run_again_keeps_waiting_and_announces_itself_once(
    photo_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from core.events.table import OutboxEvent

    _review(monkeypatch, "auto")
    monkeypatch.setenv("PACKSHOT_NOTIFY_URL", "http://127.0.0.1:9/packshot-events")
    monkeypatch.setenv("PACKSHOT_NOTIFY_ALLOW_PRIVATE", "true")
    get_settings.cache_clear()
    job = _held(photo_url, "SKU-TWICE")
    again = process_image(sku="SKU-TWICE", image_url=photo_url, sha256=SHA)
    assert again["status"] == "NEEDS_REVIEW" and again["jobId"] == str(job.id)
    with session_scope(get_settings().database_url) as session:
        events = session.exec(select(OutboxEvent).where(OutboxEvent.job_id == job.id)).all()
    assert [e.type for e in events] == ["job.needs_review"]
    body = json.loads(events[0].body)
    assert body["job"]["quality"]["verdict"] == "review"

"""A batch run: each photo its own subflow run, job row and artifact; a failure stays its own."""

from __future__ import annotations

import hashlib
import uuid

import pytest
from prefect import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId
from sqlmodel import func, select

from core.db import session_scope, upgrade_schema
from core.jobs import enqueue_job
from core.schemas import ImageJobSpec
from core.settings import get_settings
from core.tables import Asset, Job, JobStatus
from flows.batch import CarriedJob, process_batch
from flows.trigger import JobRef
from tests.flows.conftest import PHOTO

pytestmark = pytest.mark.xdist_group("prefect")


def _queued(sku: str, url: str) -> CarriedJob:
    """A job as the webhook stores it, as the dispatcher names it in a batch."""
    spec = ImageJobSpec(sku=sku, image_url=url, sha256=hashlib.sha256(PHOTO).hexdigest())
    upgrade_schema(get_settings().database_url)
    with session_scope(get_settings().database_url) as session:
        job = session.get(Job, enqueue_job(session, spec=spec).job_id)
        return CarriedJob.model_validate(JobRef.model_validate(job).parameters())


def _rows() -> dict[str, Job]:
    with session_scope(get_settings().database_url) as session:
        found = session.exec(select(Job)).all()
        for job in found:
            session.expunge(job)
    return {job.sku: job for job in found}


def _asset_count() -> int:
    with session_scope(get_settings().database_url) as session:
        return int(session.exec(select(func.count()).select_from(Asset)).one())


def test_each_photo_of_a_batch_is_its_own_subflow_and_one_failure_fails_only_it(
    photo_url: str,
) -> None:
    missing = photo_url.replace("photo.jpg", "gone.jpg")  # the CDN answers 404
    batch = [_queued("B-1", photo_url), _queued("B-2", missing), _queued("B-3", photo_url)]

    assert process_batch(jobs=batch) == {"photos": 3, "completed": 2, "failed": 1}

    rows = _rows()
    assert [rows[s].status for s in ("B-1", "B-2", "B-3")] == [
        JobStatus.DONE,
        JobStatus.FAILED,
        JobStatus.DONE,
    ]
    assert rows["B-2"].error_step == "download"
    with get_client(sync_client=True) as client:
        runs = {
            sku: client.read_flow_run(uuid.UUID(str(job.flow_run_id))) for sku, job in rows.items()
        }
        parents = {
            client.read_task_run(run.parent_task_run_id).flow_run_id for run in runs.values()
        }  # type: ignore[arg-type]
        artifacts = {
            sku: client.read_artifacts(
                artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run.id]))
            )
            for sku, run in runs.items()
        }
    assert len({run.id for run in runs.values()}) == 3 and len(parents) == 1  # one batch run
    assert {sku: run.name for sku, run in runs.items()} == {s: f"{s}-default" for s in runs}
    assert {sku: run.state_name for sku, run in runs.items()} == {
        "B-1": "Completed",
        "B-2": "Failed",
        "B-3": "Completed",
    }
    assert {sku: [a.key for a in found if a.key] for sku, found in artifacts.items()} == {
        s: [f"packshot-{s.lower()}-default"] for s in runs
    }

    # The same batch delivered again: the finished photos are not redone, the failed one fails
    # again on its own, and no job or asset is added.
    assets = _asset_count()
    assert process_batch(jobs=batch) == {"photos": 3, "completed": 2, "failed": 1}
    again = _rows()
    assert len(again) == 3 and _asset_count() == assets
    assert [again[s].status for s in ("B-1", "B-3")] == [JobStatus.DONE] * 2
    assert again["B-1"].manifest_key == rows["B-1"].manifest_key

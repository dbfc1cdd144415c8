"""The per-image flow rides out a PostgreSQL restart in the middle of its run."""

from __future__ import annotations

import hashlib
import logging
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlmodel import select

from core.db import session_scope
from core.settings import get_settings
from core.tables import Asset, Job, JobStep
from flows.process_image import process_image
from tasks import _runtime
from tests.helpers.http_server import Reply, Script, serve
from tests.helpers.images import jpeg_bytes, product_photo
from tests.helpers.postgres import scalar, start_outage, temporary_database

pytestmark = pytest.mark.xdist_group("prefect")

PHOTO = jpeg_bytes(product_photo())
SHA = hashlib.sha256(PHOTO).hexdigest()


@pytest.fixture
def pg_jobs(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The job tables on a throwaway PostgreSQL database, for this test's settings."""
    with temporary_database() as url:
        monkeypatch.setenv("PACKSHOT_DATABASE_URL", url)
        get_settings.cache_clear()
        _runtime.reset()
        yield url


def test_a_database_restart_mid_run_ends_done_with_every_asset(
    pg_jobs: str, packshot_env: Path, db_warnings: list[logging.LogRecord]
) -> None:
    script = Script()
    script.add("/media/photo.jpg", Reply(200, PHOTO, {"content-type": "image/jpeg"}))

    def cutting_out() -> bool:
        # The cutout step has begun: the job exists and most of the pipeline is still ahead.
        sql = "SELECT count(*) FROM job_step WHERE step = 'remove_background'"
        try:
            return bool(scalar(pg_jobs, sql))
        except Exception:  # noqa: BLE001  (the schema is not there yet)
            return False

    restart = start_outage(pg_jobs, 3.0, when=cutting_out, until=lambda: bool(db_warnings))
    with serve(script) as base:
        result = process_image(sku="SKU-PG", image_url=f"{base}/media/photo.jpg", sha256=SHA)
    finished = time.monotonic()
    gone = restart.join()

    assert gone.started_at is not None and gone.started_at < finished
    assert gone.terminated >= 1  # the run's pooled connections were cut
    assert db_warnings, "the outage did not meet a single database call of the run"
    assert finished - gone.started_at >= 3.0  # the run waited for the database to come back
    assert result["status"] == "DONE"
    job_id = uuid.UUID(str(result["jobId"]))
    with session_scope(pg_jobs) as session:
        job = session.get(Job, job_id)
        assert job is not None and job.status == "DONE" and job.error is None
        steps = session.exec(select(JobStep).where(JobStep.job_id == job_id)).all()
        assets = session.exec(select(Asset).where(Asset.job_id == job_id)).all()
    assert len(steps) == 10 and {s.state for s in steps} == {"COMPLETED"}
    assert job.manifest_key == f"manifests/SKU-PG/{SHA}-default.json"
    store = packshot_env / "store"
    assert (store / job.manifest_key).is_file()
    assert sorted(a.key for a in assets) == sorted(
        p.relative_to(store).as_posix() for p in store.rglob("*") if p.is_file()
    )
    assert len(assets) == 26  # original, 24 produced, manifest

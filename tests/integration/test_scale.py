"""A burst of 40 signed webhooks (and 10 duplicates) on the production site: 40 jobs, no more.

Checks the whole hand-off chain across processes: webhook → outbox → dispatcher → Prefect on
PostgreSQL → two workers → flow runs writing to S3 and PostgreSQL.
"""

from __future__ import annotations

import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlmodel import Session, col, select

from core.db import get_engine
from core.tables import Asset, JobStatus, JobStep
from tests.helpers.site import BUCKET, Site

# Up to 900 s for the burst, after the site starts.
pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(1500)]


@pytest.fixture
def site(scale_site: Site) -> Site:
    """This module's production site."""
    return scale_site


PHOTOS = 40
DUPLICATES = 10
# original, cutout, mask, 2 backgrounds, 2 composites, 18 derivatives, manifest
OBJECTS_PER_PHOTO = 26


def test_a_burst_of_forty_webhooks_makes_forty_jobs_each_done_once(site: Site) -> None:
    deliveries = [(f"SCALE-{n:03d}", n) for n in range(PHOTOS)]
    deliveries += deliveries[:DUPLICATES]  # 3JMS retries some deliveries

    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(lambda d: site.deliver(*d), deliveries))

    assert {a.status_code for a in answers} <= {200, 202}, [a.text for a in answers]
    job_ids = [a.json()["jobId"] for a in answers]
    unique = sorted(set(job_ids))
    assert len(unique) == PHOTOS
    assert job_ids[PHOTOS:] == job_ids[:DUPLICATES]  # a duplicate names the same job

    jobs = site.wait_until_ended(unique, timeout=900)
    failed = {j.sku: j.error for j in jobs.values() if j.status != JobStatus.DONE}
    assert not failed

    runs = site.settled_flow_runs(unique)
    assert sorted(len(r) for r in runs.values()) == [1] * PHOTOS  # exactly 40 flow runs
    assert {r[0].state.type.value for r in runs.values()} == {"COMPLETED"}
    assert len(site.online_workers()) >= 2

    _assert_objects(site, jobs)
    _assert_rows(site, unique)
    # Prefect's flow results went to the same bucket, through the S3Bucket block.
    results = site.objects("prefect-results/")
    assert len(results) >= PHOTOS


def _assert_objects(site: Site, jobs: dict) -> None:
    objects = site.objects("assets/")
    per_sha = Counter()
    for key in objects:
        for job in jobs.values():
            if job.sha256 in key:
                per_sha[job.sha256] += 1
                break
    assert len(objects) == PHOTOS * OBJECTS_PER_PHOTO
    assert set(per_sha.values()) == {OBJECTS_PER_PHOTO}
    manifests = [k for k in objects if k.startswith("assets/manifests/")]
    assert len(manifests) == PHOTOS
    # Every object was written once: no step ran twice for the same photo.
    written = Counter(path for path in site.s3.puts if path.startswith(f"/{BUCKET}/assets/"))
    assert written and max(written.values()) == 1, written.most_common(3)


def _assert_rows(site: Site, job_ids: list[str]) -> None:
    ids = [uuid.UUID(i) for i in job_ids]
    with Session(get_engine(site.settings.database_url)) as session:
        assets = session.exec(select(Asset.job_id, Asset.key).where(col(Asset.job_id).in_(ids)))
        asset_rows = list(assets.all())
        steps = session.exec(select(JobStep).where(col(JobStep.job_id).in_(ids))).all()
    assert len(asset_rows) == len(set(asset_rows)) == PHOTOS * OBJECTS_PER_PHOTO
    per_step = Counter((row.job_id, row.step, row.variant) for row in steps)
    assert max(per_step.values()) == 1  # one row per step (and variant) per job
    assert {row.attempts for row in steps} == {1}  # nothing failed, nothing ran twice
    per_job = Counter(row.job_id for row in steps)
    # download, remove_background, generate_backgrounds, 2 composites, 2 derivatives,
    # quality, manifest, publish
    assert set(per_job.values()) == {10}

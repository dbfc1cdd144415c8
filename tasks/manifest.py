"""Step 5: the JSON manifest, written last: its presence means the set is complete."""

from __future__ import annotations

import uuid
from functools import partial

from prefect import task
from sqlmodel import Session

from core import jobs
from core.keys import manifest_key
from core.manifest import Manifest, build_manifest
from core.tables import JobStatus, Step, utcnow
from tasks._hooks import tracked
from tasks._policy import STEP_OPTIONS
from tasks._runtime import put_manifest, run_in_db

__all__ = ["write_manifest"]


@task(name="manifest", timeout_seconds=60, **STEP_OPTIONS)
def write_manifest(job_id: str) -> str:
    """Build the manifest from the job's asset and step rows and store it; returns its key.

    Args:
        job_id: the job whose assets are all stored.
    """
    with tracked(job_id, Step.MANIFEST) as record:
        record.advance_to = JobStatus.SHOPIFY_PUSH
        key, manifest = run_in_db(partial(_build, job_id=job_id), what="manifest rows")
        asset = put_manifest(key, manifest)
        remember = partial(jobs.set_manifest_key, job_id=uuid.UUID(job_id), key=key)
        run_in_db(remember, what="manifest key")
        record.provider = "packshot"
        record.details = {"totalAssets": manifest.metadata.total_assets}
        record.assets.append(asset)
        return key


def _build(session: Session, *, job_id: str) -> tuple[str, Manifest]:
    """The manifest's key and content from the job's rows (the manifest's own row left out)."""
    job = jobs.get_job(session, job_id=uuid.UUID(job_id))
    if job is None:
        raise LookupError(f"no job {job_id}")
    key = manifest_key(job.sku, job.sha256, job.theme)
    manifest = build_manifest(
        sku=job.sku,
        sha256=job.sha256,
        theme=job.theme,
        source_url=job.source_url,
        assets=[a for a in jobs.list_assets(session, job_id=job.id) if a.key != key],
        steps=[s for s in jobs.list_steps(session, job_id=job.id) if s.step != Step.MANIFEST],
        cost_usd=job.cost_usd,
        timestamp=utcnow(),
    )
    return key, manifest

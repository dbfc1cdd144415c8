"""Step 5: the JSON manifest, written last: its presence means the set is complete."""

from __future__ import annotations

import uuid
from functools import partial

from sqlmodel import Session

from core import jobs
from core.context import JobContext
from core.keys import manifest_key
from core.manifest import Manifest, build_manifest
from core.schemas import parse_quality
from core.tables import JobStatus, Step, utcnow
from tasks._runtime import put_manifest, run_in_db
from tasks.step import StepRecord, step

__all__ = ["write_manifest"]


@step(Step.MANIFEST, timeout_s=60)
def write_manifest(ctx: JobContext, record: StepRecord) -> str:
    """Build the manifest from the job's asset and step rows and store it; returns its key.

    Args:
        ctx: the job, whose assets are all stored.
        record: this attempt's step row.
    """
    record.advance_to = JobStatus.SHOPIFY_PUSH
    key, manifest = run_in_db(partial(_build, job_id=ctx.job_id), what="manifest rows")
    asset = put_manifest(key, manifest)
    remember = partial(jobs.set_manifest_key, job_id=ctx.job_id, key=key)
    run_in_db(remember, what="manifest key")
    record.provider = "packshot"
    record.details = {"totalAssets": manifest.metadata.total_assets}
    record.assets.append(asset)
    return key


def _build(session: Session, *, job_id: uuid.UUID) -> tuple[str, Manifest]:
    """The manifest's key and content from the job's rows (the manifest's own row left out)."""
    job = jobs.get_job(session, job_id=job_id)
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
        quality=parse_quality(job.quality),
    )
    return key, manifest

"""`packshot publish JOB --dry-run`: what publishing a job would change, changing nothing."""

from __future__ import annotations

import uuid

from core import jobs
from core.db import session_scope, upgrade_schema
from core.errors import InputError
from core.manifest import Manifest
from core.publishers.base import PublishPlan, PublishRequest
from core.publishers.registry import new_publisher
from core.settings import Settings
from core.storage import new_store

__all__ = ["preview_job"]


def preview_job(settings: Settings, job_id: str) -> PublishPlan:
    """Read the job's manifest and the storefront; list the mutations publishing would send.

    Raises:
        InputError: no such job, or it has no manifest yet.
        ConfigurationError: publisher unknown or not configured.
        PublishError: the storefront could not be read (product not found, …).
    """
    try:
        job_uuid = uuid.UUID(job_id)
    except ValueError:
        raise InputError(f"not a job id: {job_id!r}") from None
    upgrade_schema(settings.database_url)
    with session_scope(settings.database_url) as session:
        job = jobs.get_job(session, job_id=job_uuid)
        if job is None:
            raise InputError(f"no job {job_id}")
        key, status = job.manifest_key, job.status
    if not key:
        raise InputError(f"job {job_id} has no manifest yet (status {status})")
    store = new_store(
        settings.store_url,
        endpoint_url=settings.s3_endpoint_url,
        region=settings.s3_region,
        credentials_block=settings.aws_credentials_block,
    )
    manifest = Manifest.model_validate_json(store.get(key))
    publisher = new_publisher(settings, store=store)
    return publisher.plan(PublishRequest.from_manifest(manifest))

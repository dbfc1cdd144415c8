"""The ``manifestUrl`` of an event: public base URL + key, else the store's own URL for it.

With ``PACKSHOT_PUBLIC_BASE_URL`` (a CDN in front of the bucket) the URL is that base plus the
key; otherwise the object store decides: a presigned URL on S3 (valid
``PACKSHOT_MANIFEST_URL_EXPIRES_S``), a ``file://`` URL for a local folder.
"""

from __future__ import annotations

import logging
from functools import lru_cache
from urllib.parse import quote

from core.errors import PipelineError
from core.settings import Settings
from core.storage import ObjectStore, new_store

__all__ = ["manifest_url"]

log = logging.getLogger("packshot.events")


@lru_cache(maxsize=4)
def _store(url: str, endpoint: str | None, region: str | None, block: str | None) -> ObjectStore:
    return new_store(url, endpoint_url=endpoint, region=region, credentials_block=block)


def manifest_url(key: str | None, settings: Settings) -> str | None:
    """Where a receiver can read the manifest ``key``; None without a key or when the store
    cannot say (a misconfigured store must not stop the job's status change: it is logged)."""
    if not key:
        return None
    if settings.public_base_url:
        return f"{settings.public_base_url.rstrip('/')}/{quote(key, safe='/')}"
    try:
        store = _store(
            settings.store_url,
            settings.s3_endpoint_url,
            settings.s3_region,
            settings.aws_credentials_block,
        )
        return store.url(key, expires_in=settings.manifest_url_expires_s)
    except (PipelineError, ValueError) as exc:
        log.warning("no manifest URL for the event (%s: %s)", type(exc).__name__, exc)
        return None

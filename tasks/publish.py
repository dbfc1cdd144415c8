"""Step 6: publish the composites to the storefront (an explicit, recorded no-op when disabled).

With ``PACKSHOT_PUBLISHER=shopify`` the job's master composites become the product's media (see
``core/publishers/shopify.py``); the step row's details record the product, variant and media
ids, and the manifest (written by step 5) is rewritten under the same key with a ``shopify``
section. With ``none`` the step records "publishing disabled" and changes nothing.
"""

from __future__ import annotations

import threading

from core.context import JobContext
from core.jobs import AssetRecord
from core.manifest import Manifest, ManifestShopify
from core.publishers import PublishRequest, PublishResult, new_publisher
from core.publishers.base import Publisher
from core.settings import Settings
from core.storage import ObjectStore
from core.tables import Step, utcnow
from tasks._runtime import put_manifest, settings, store
from tasks._shopify_limits import shopify_gate
from tasks.step import StepRecord, step

__all__ = ["publish"]

# One publisher per (settings, store) in a process: it holds the HTTP client and, for the
# client-credentials grant, the access token (fetched once a day, not once a job).
_built: list[tuple[Settings, ObjectStore, Publisher]] = []
_built_lock = threading.Lock()


def _publisher(s: Settings, objects: ObjectStore) -> Publisher:
    with _built_lock:
        if _built and _built[0][0] is s and _built[0][1] is objects:
            return _built[0][2]
        publisher = new_publisher(s, store=objects, gate=shopify_gate(s))
        _built[:] = [(s, objects, publisher)]
        return publisher


@step(Step.PUBLISH, timeout_s=900)
def publish(ctx: JobContext, record: StepRecord, manifest_key: str) -> str:
    """Publish the job's images; returns the product id, or "disabled".

    Args:
        ctx: the job to publish.
        record: this attempt's step row.
        manifest_key: the manifest listing its files.
    """
    s = settings()
    if s.publisher == "none":
        record.provider = "none"
        record.details = {"reason": "publishing disabled (PACKSHOT_PUBLISHER=none)"}
        return "disabled"
    publisher = _publisher(s, store())
    manifest = Manifest.model_validate_json(store().get(manifest_key))
    result = publisher.publish(PublishRequest.from_manifest(manifest))
    record.provider = publisher.name
    record.details = result.details()
    record.assets.append(_rewrite_manifest(manifest_key, manifest, result))
    return result.product_id or ""


def _rewrite_manifest(key: str, manifest: Manifest, result: PublishResult) -> AssetRecord:
    """Store the manifest again under ``key`` with the ``shopify`` section; its new asset row."""
    section = ManifestShopify(
        product_id=result.product_id or "",
        variant_id=result.variant_id,
        media_ids=list(result.media_ids),
        created=list(result.created),
        kept=list(result.kept),
        removed=list(result.removed),
        published_at=utcnow(),
    )
    return put_manifest(key, manifest.model_copy(update={"shopify": section}))

"""Step 4: every storefront size and format of one master composite (one task per composite)."""

from __future__ import annotations

from prefect import task

from core.jobs import AssetRecord
from core.keys import derivative_key
from core.tables import AssetKind, Step
from imaging.derivatives import DEFAULT_SPECS, render_all
from tasks._hooks import tracked
from tasks._policy import STEP_OPTIONS
from tasks._runtime import decode_from_store, describe_stored, settings, store

__all__ = ["derivatives"]


def _existing(keys: dict[str, tuple[str, str]], variant: int) -> list[AssetRecord] | None:
    found = []
    for key, (size, _fmt) in keys.items():
        asset = describe_stored(key, AssetKind.DERIVATIVE, variant=variant, size=size)
        if asset is None:
            return None
        found.append(asset)
    return found


# No timeout_seconds: this step is mapped, so it runs in a worker thread, where Prefect cannot
# interrupt it. Its work is bounded by the input limits instead (pure CPU, no network).
@task(name="derivatives", **STEP_OPTIONS)
def derivatives(
    job_id: str,
    sku: str,
    sha256: str,
    theme: str,
    composite_key: str,
    variant: int,
    force: bool = False,
) -> list[str]:
    """Render hero/pdp/thumb × JPEG/WebP/AVIF from one master; returns the nine keys.

    Args:
        job_id: the job this step belongs to.
        sku: product SKU.
        sha256: SHA-256 of the source bytes.
        theme: theme name.
        composite_key: the master composite.
        variant: background number, from 1.
        force: render again even when all nine exist.
    """
    keys = {
        derivative_key(theme, sku, sha256, variant, spec.name, spec.extension): (
            spec.name,
            spec.fmt,
        )
        for spec in DEFAULT_SPECS
    }
    with tracked(job_id, Step.DERIVATIVES, variant) as record:
        existing = None if force else _existing(keys, variant)
        if existing is not None:
            record.skipped = True
            record.assets.extend(existing)
            return list(keys)
        master = decode_from_store(composite_key)
        rendered = render_all(master, DEFAULT_SPECS, workers=settings().derivative_workers)
        record.provider = "pillow"
        for key, output in zip(keys, rendered, strict=True):
            stored = store().put(key, output.data, content_type=output.spec.content_type)
            record.assets.append(
                AssetRecord(
                    kind=AssetKind.DERIVATIVE,
                    key=key,
                    content_type=stored.content_type,
                    bytes=stored.size,
                    width=output.width,
                    height=output.height,
                    variant=variant,
                    size=output.spec.name,
                    format=output.spec.fmt,
                    sha256=stored.sha256,
                )
            )
        return list(keys)

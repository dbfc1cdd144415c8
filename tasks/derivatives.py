"""Step 4: every storefront size and format of one master composite (one task per composite)."""

from __future__ import annotations

from core.context import JobContext
from core.jobs import AssetRecord
from core.keys import derivative_key
from core.tables import AssetKind, Step
from imaging.derivatives import DEFAULT_SPECS, render_all
from tasks._runtime import decode_from_store, describe_stored, settings, store
from tasks.step import StepRecord, step

__all__ = ["derivatives"]


def _existing(keys: dict[str, tuple[str, str]], variant: int) -> list[AssetRecord] | None:
    found = []
    for key, (size, _fmt) in keys.items():
        asset = describe_stored(key, AssetKind.DERIVATIVE, variant=variant, size=size)
        if asset is None:
            return None
        found.append(asset)
    return found


# No timeout: this step is mapped, so it runs in a worker thread, where Prefect cannot
# interrupt it. Its work is bounded by the input limits instead (pure CPU, no network).
@step(Step.DERIVATIVES)
def derivatives(ctx: JobContext, record: StepRecord, composite_key: str, variant: int) -> list[str]:
    """Render hero/pdp/thumb × JPEG/WebP/AVIF from one master; returns the nine keys.

    Args:
        ctx: the job (``rerender`` renders again even when all nine exist).
        record: this attempt's step row.
        composite_key: the master composite.
        variant: background number, from 1.
    """
    keys = {
        derivative_key(ctx.theme_name, ctx.sku, ctx.sha256, variant, spec.name, spec.extension): (
            spec.name,
            spec.fmt,
        )
        for spec in DEFAULT_SPECS
    }
    existing = None if ctx.rerender else _existing(keys, variant)
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

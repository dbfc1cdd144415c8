"""Step 3: place the cutout on one background with a soft shadow: the master composite."""

from __future__ import annotations

from core.context import JobContext
from core.keys import composite_key
from core.tables import AssetKind, Step
from imaging.composite import composite as compose
from imaging.composite import place
from tasks._runtime import decode_from_store, describe_stored, put_image
from tasks.step import StepRecord, step

__all__ = ["composite"]

# The master feeds every derivative: high quality so re-encoding loses nothing visible.
MASTER_QUALITY = 92


# No timeout: this step is mapped, so it runs in a worker thread, where Prefect cannot
# interrupt it. Its work is bounded by the input limits instead (pure CPU, no network).
@step(Step.COMPOSITE)
def composite(
    ctx: JobContext, record: StepRecord, cutout_key: str, background_key: str, variant: int
) -> str:
    """Composite the cutout onto background ``variant``; returns the master's key.

    Args:
        ctx: the job (the theme's fill and shadow; ``rerender`` composites again).
        record: this attempt's step row.
        cutout_key: the RGBA cutout.
        background_key: the background to place it on.
        variant: background number, from 1.
    """
    key = composite_key(ctx.theme_name, ctx.sku, ctx.sha256, variant)
    existing = None if ctx.rerender else describe_stored(key, AssetKind.COMPOSITE, variant=variant)
    if existing is not None:
        record.skipped = True
        record.assets.append(existing)
        return key
    background = decode_from_store(background_key)
    placement = place(
        decode_from_store(cutout_key),
        background.width,
        fill=ctx.theme.fill,
        max_upscale=ctx.theme.max_upscale,
        shadow=ctx.theme.shadow.to_imaging(),
    )
    master = compose(background, placement)
    record.provider = "pillow"
    record.assets.append(
        put_image(
            key, master, "jpeg", kind=AssetKind.COMPOSITE, quality=MASTER_QUALITY, variant=variant
        )
    )
    return key

"""Step 3: place the cutout on one background with a soft shadow: the master composite."""

from __future__ import annotations

from prefect import task

from core.keys import composite_key
from core.tables import AssetKind, Step
from core.themes import resolve_theme
from imaging.composite import composite as compose
from imaging.composite import place
from tasks._hooks import tracked
from tasks._policy import STEP_OPTIONS
from tasks._runtime import decode_from_store, describe_stored, put_image, settings

__all__ = ["composite"]

# The master feeds every derivative: high quality so re-encoding loses nothing visible.
MASTER_QUALITY = 92


# No timeout_seconds: this step is mapped, so it runs in a worker thread, where Prefect cannot
# interrupt it. Its work is bounded by the input limits instead (pure CPU, no network).
@task(name="composite", **STEP_OPTIONS)
def composite(
    job_id: str,
    sku: str,
    sha256: str,
    theme: str,
    cutout_key: str,
    background_key: str,
    variant: int,
    force: bool = False,
) -> str:
    """Composite the cutout onto background ``variant``; returns the master's key.

    Args:
        job_id: the job this step belongs to.
        sku: product SKU.
        sha256: SHA-256 of the source bytes.
        theme: theme name (fill share, shadow).
        cutout_key: the RGBA cutout.
        background_key: the background to place it on.
        variant: background number, from 1.
        force: composite again even when the master exists.
    """
    key = composite_key(theme, sku, sha256, variant)
    with tracked(job_id, Step.COMPOSITE, variant) as record:
        existing = None if force else describe_stored(key, AssetKind.COMPOSITE, variant=variant)
        if existing is not None:
            record.skipped = True
            record.assets.append(existing)
            return key
        spec = resolve_theme(theme, settings().themes_file)
        background = decode_from_store(background_key)
        placement = place(
            decode_from_store(cutout_key),
            background.width,
            fill=spec.fill,
            max_upscale=spec.max_upscale,
            shadow=spec.shadow.to_imaging(),
        )
        master = compose(background, placement)
        record.provider = "pillow"
        record.assets.append(
            put_image(
                key,
                master,
                "jpeg",
                kind=AssetKind.COMPOSITE,
                quality=MASTER_QUALITY,
                variant=variant,
            )
        )
        return key

"""Step 1b: cut the product out: ``cutouts/{sku}/{sha}.png`` (RGBA), ``masks/{sku}/{sha}.png``."""

from __future__ import annotations

from pydantic import BaseModel

from core.context import JobContext
from core.errors import InputError
from core.keys import cutout_key, mask_key
from core.providers.freepik_source import fetchable_url, staging_key
from core.providers.registry import new_remover
from core.tables import AssetKind, JobStatus, Step
from imaging.checks import QualityError, check_cutout
from imaging.codec import InvalidImage, decode
from tasks._limits import freepik_limits
from tasks._runtime import describe_stored, put_image, settings, store
from tasks.step import StepRecord, step

__all__ = ["CutoutRef", "remove_background"]


class CutoutRef(BaseModel):
    """Keys of the cutout and the mask."""

    cutout_key: str
    mask_key: str


def _decode_source(original_key: str) -> object:
    s = settings()
    try:
        return decode(
            store().get(original_key), max_pixels=s.max_source_pixels, min_side=s.min_source_px
        )
    except InvalidImage as exc:
        raise InputError(f"source image rejected: {exc}") from exc


def _remote_source(ctx: JobContext, original_key: str, image: object) -> str | None:
    """The URL a cloud segmenter fetches the photo from: only worked out when one is set."""
    if "freepik" not in ([ctx.segmenter] if ctx.segmenter else settings().segmenter_chain):
        return ctx.source_url
    return fetchable_url(
        store(),
        original_key=original_key,
        source_url=ctx.source_url,
        image=image,  # type: ignore[arg-type]
        converted_key=staging_key(ctx.sku, ctx.sha256),
    )


@step(Step.REMOVE_BACKGROUND, timeout_s=300)
def remove_background(ctx: JobContext, record: StepRecord, original_key: str) -> CutoutRef:
    """Segment the product; reuses a cutout made earlier for the same image (any theme).

    Args:
        ctx: the job (its source URL, for providers that fetch the photo themselves;
            ``force`` segments again even when a cutout exists).
        record: this attempt's step row.
        original_key: where the original is stored.
    """
    ref = CutoutRef(
        cutout_key=cutout_key(ctx.sku, ctx.sha256), mask_key=mask_key(ctx.sku, ctx.sha256)
    )
    record.advance_to = JobStatus.BG_REMOVED
    if not ctx.force:
        reused = [
            describe_stored(ref.cutout_key, AssetKind.CUTOUT),
            describe_stored(ref.mask_key, AssetKind.MASK),
        ]
        if all(reused):
            record.skipped = True
            record.details = {"reason": "cutout and mask already stored"}
            record.assets.extend(a for a in reused if a is not None)
            return ref
    image = _decode_source(original_key)
    remote = _remote_source(ctx, original_key, image)
    with freepik_limits():
        remover = new_remover(settings(), only=ctx.segmenter)
        segmentation = remover.remove(image, source_url=remote)  # type: ignore[arg-type]
    try:
        check_cutout(segmentation.cutout)
    except QualityError as exc:
        raise InputError(f"no product found in the photo: {exc}") from exc
    record.provider = segmentation.provider
    record.cost_usd = segmentation.cost_usd
    record.details = dict(segmentation.details)
    record.assets.append(
        put_image(ref.cutout_key, segmentation.cutout, "png", kind=AssetKind.CUTOUT)
    )
    record.assets.append(put_image(ref.mask_key, segmentation.mask, "png", kind=AssetKind.MASK))
    return ref

"""Step 1b: cut the product out: ``cutouts/{sku}/{sha}.png`` (RGBA), ``masks/{sku}/{sha}.png``."""

from __future__ import annotations

from prefect import task
from pydantic import BaseModel

from core.errors import InputError
from core.keys import cutout_key, mask_key
from core.providers.freepik_source import fetchable_url, staging_key
from core.providers.registry import new_remover
from core.tables import AssetKind, JobStatus, Step
from imaging.checks import QualityError, check_cutout
from imaging.codec import InvalidImage, decode
from tasks._hooks import tracked
from tasks._limits import freepik_limits
from tasks._policy import STEP_OPTIONS
from tasks._runtime import describe_stored, put_image, settings, store

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


def _remote_source(
    sku: str, sha256: str, original_key: str, source_url: str, image: object
) -> str | None:
    """The URL a cloud segmenter fetches the photo from: only worked out when one is set."""
    if "freepik" not in settings().segmenter_chain:
        return source_url
    return fetchable_url(
        store(),
        original_key=original_key,
        source_url=source_url,
        image=image,  # type: ignore[arg-type]
        converted_key=staging_key(sku, sha256),
    )


@task(name="remove_background", timeout_seconds=300, **STEP_OPTIONS)
def remove_background(
    job_id: str, sku: str, sha256: str, original_key: str, source_url: str, force: bool = False
) -> CutoutRef:
    """Segment the product; reuses a cutout made earlier for the same image (any theme).

    Args:
        job_id: the job this step belongs to.
        sku: product SKU.
        sha256: SHA-256 of the source bytes.
        original_key: where the original is stored.
        source_url: the source's URL, for providers that fetch it themselves.
        force: segment again even when a cutout exists.
    """
    ref = CutoutRef(cutout_key=cutout_key(sku, sha256), mask_key=mask_key(sku, sha256))
    with tracked(job_id, Step.REMOVE_BACKGROUND) as record:
        record.advance_to = JobStatus.BG_REMOVED
        if not force:
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
        remote = _remote_source(sku, sha256, original_key, source_url, image)
        with freepik_limits():
            segmentation = new_remover(settings()).remove(image, source_url=remote)  # type: ignore[arg-type]
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

"""Checks on what the pipeline made: product fidelity, the `white` channel's rules, derivatives.

Pure functions returning :class:`imaging.quality.Check`; they decode what they are given and touch
nothing else.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageFilter

from imaging.codec import InvalidImage, probe
from imaging.composite import Placement
from imaging.quality import Check

__all__ = ["derivative_matches", "product_fidelity", "white_compliance"]

_WHITE = 255


def product_fidelity(
    composite: Image.Image, placement: Placement, *, max_error: float = 8.0
) -> Check:
    """Mean difference (0-255) between the composite and the placed cut-out where it is opaque.

    Inside the product's fully opaque pixels (eroded by one pixel, so the anti-aliased rim does
    not count) a composite must show the cut-out's own pixels after ``place``'s resize: a
    background generator must never alter the product. A lossless composite scores 0; a JPEG of
    a grainy product 3.5 (quality 95) to 4.0 (quality 80), so the default allows twice that.

    Raises:
        ValueError: the composite is not the placement's canvas size, or ``max_error`` < 0.
    """
    if max_error < 0:
        raise ValueError(f"max_error must be >= 0, got {max_error}")
    if composite.size != (placement.canvas, placement.canvas):
        raise ValueError(f"composite is {composite.size}, placement canvas is {placement.canvas}")
    alpha = placement.cutout.getchannel("A").filter(ImageFilter.MinFilter(3))
    x, y = placement.position
    box = (x, y, x + alpha.width, y + alpha.height)
    shown = np.asarray(composite.convert("RGB").crop(box), dtype=np.int16)
    own = np.asarray(placement.cutout.convert("RGB"), dtype=np.int16)
    inside = np.asarray(alpha) == 255
    value = float(np.abs(shown - own)[inside].mean()) if inside.any() else 0.0
    detail = (
        f"the product differs from the cut-out by {value:.1f}/255 on average (at most {max_error})"
    )
    return Check("product_fidelity", round(value, 3), max_error, value <= max_error, detail)


def white_compliance(
    data: bytes,
    placement: Placement,
    *,
    min_side: int = 1600,
    min_fill: float = 0.85,
    min_white: float = 0.995,
) -> list[Check]:
    """A marketplace main image: JPEG, sRGB, at least ``min_side`` px, product filling at least
    ``min_fill`` of the longer side, and pure #FFFFFF wherever there is no product or shadow.

    The white share counts background pixels more than 8 px from the product and its shadow
    (JPEG rings at edges) that are exactly (255, 255, 255).

    Raises:
        InvalidImage: ``data`` is not an image.
    """
    info = probe(data)
    image = Image.open(io.BytesIO(data))
    icc = image.info.get("icc_profile")
    srgb = image.mode == "RGB" and (not icc or b"sRGB" in icc)
    fill = max(placement.product_box[2] - placement.product_box[0],
               placement.product_box[3] - placement.product_box[1]) / placement.canvas  # fmt: skip
    white = _white_share(image.convert("RGB"), placement)
    side = min(info.width, info.height)
    return [
        Check("white_format", float(info.format == "jpeg"), 1.0, info.format == "jpeg",
              f"the main image is {info.format} (JPEG expected)"),
        Check("white_srgb", float(srgb), 1.0, srgb, f"mode {image.mode}, sRGB: {srgb}"),
        Check("white_min_side", float(side), float(min_side), side >= min_side,
              f"the shorter side is {side} px (at least {min_side})"),
        Check("white_fill", round(fill, 4), min_fill, fill >= min_fill,
              f"the product fills {fill:.0%} of the longer side (at least {min_fill:.0%})"),
        Check("white_background", round(white, 4), min_white, white >= min_white,
              f"{white:.1%} of the background is pure #FFFFFF (at least {min_white:.1%})"),
    ]  # fmt: skip


def _white_share(image: Image.Image, placement: Placement) -> float:
    cover = Image.new("L", image.size, 0)
    cover.paste(placement.cutout.getchannel("A"), placement.position)
    if placement.shadow is not None:
        shadow = placement.shadow.point(lambda v: 255 if v > 0 else 0)
        cover.paste(255, placement.shadow_position, shadow)
    # A box blur spreads any covered pixel 8 px: a dilation at a cost independent of the radius.
    busy = cover.point(lambda v: 255 if v > 0 else 0).filter(ImageFilter.BoxBlur(8))
    background = np.asarray(busy) == 0
    if image.size != cover.size or not background.any():
        return 0.0 if image.size != cover.size else 1.0
    pure = (np.asarray(image) == _WHITE).all(axis=2)
    return float(pure[background].mean())


def derivative_matches(data: bytes, *, width: int, height: int, fmt: str) -> Check:
    """The file is an image of exactly the size and format the manifest claims.

    Example:
        >>> buf = io.BytesIO(); Image.new("RGB", (4, 3)).save(buf, "PNG")
        >>> derivative_matches(buf.getvalue(), width=4, height=3, fmt="png").passed
        True
    """
    try:
        info = probe(data)
    except InvalidImage as exc:
        return Check("derivative", 0.0, 1.0, False, f"not a readable image: {exc}")
    ok = (info.width, info.height, info.format) == (width, height, fmt)
    detail = f"{info.format} {info.width}x{info.height}, claimed {fmt} {width}x{height}"
    return Check("derivative", float(ok), 1.0, ok, detail)

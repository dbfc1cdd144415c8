"""Place a cut-out product on a square canvas with a soft shadow; paint it onto backgrounds.

:func:`place` does the expensive part once per cut-out and canvas size (resample the product,
blur its shadow); :func:`composite` then costs two masked pastes per background.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from PIL import Image, ImageFilter

from imaging.geometry import alpha_bbox

__all__ = ["Placement", "Shadow", "composite", "place"]

Box = tuple[int, int, int, int]


@dataclass(frozen=True)
class Shadow:
    """A soft drop shadow, defined at a reference canvas size and scaled with the canvas.

    Attributes:
        blur: Gaussian sigma in pixels at ``reference_size``.
        opacity: Darkening under a fully opaque product, 0-1.
        offset: ``(x, y)`` shift in pixels at ``reference_size``; positive is right and down.
        reference_size: Canvas side the pixel values refer to (the original system's 1024).
    """

    blur: float = 20.0
    opacity: float = 0.3
    offset: tuple[float, float] = (5.0, 5.0)
    reference_size: int = 1024

    def __post_init__(self) -> None:
        if self.blur < 0 or not 0.0 <= self.opacity <= 1.0 or self.reference_size < 1:
            raise ValueError(
                "shadow needs blur >= 0, opacity within 0-1 and reference_size >= 1, got "
                f"{self.blur}, {self.opacity}, {self.reference_size}"
            )


@dataclass(frozen=True, eq=False)
class Placement:
    """A product scaled and positioned on a canvas, with its shadow; reusable across backgrounds.

    Attributes:
        canvas: Side of the square canvas in pixels.
        cutout: The scaled product, ``RGBA``, already clipped to the canvas.
        position: ``(x, y)`` of ``cutout`` on the canvas.
        product_box: The product's bounding box on the canvas (alpha above the trim threshold).
        shadow: The shadow's darkening mask (``L``, 255 = black), or ``None``.
        shadow_position: ``(x, y)`` of ``shadow`` on the canvas.
    """

    canvas: int
    cutout: Image.Image
    position: tuple[int, int]
    product_box: Box
    shadow: Image.Image | None = None
    shadow_position: tuple[int, int] = (0, 0)
    # Split once here so every composite pastes without converting the cut-out again.
    _rgb: Image.Image = field(init=False, repr=False)
    _alpha: Image.Image = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.cutout.mode != "RGBA":
            raise ValueError(f"placement cutout must be RGBA, got {self.cutout.mode}")
        object.__setattr__(self, "_rgb", self.cutout.convert("RGB"))
        object.__setattr__(self, "_alpha", self.cutout.getchannel("A"))


def place(
    cutout: Image.Image,
    canvas: int,
    *,
    fill: float = 0.85,
    max_upscale: float = 2.0,
    shadow: Shadow | None = Shadow(),  # frozen, so one shared default instance is safe
) -> Placement:
    """Scale and centre a product on a square canvas and build its shadow.

    The product's alpha bounding box (alpha > 8) is scaled so its longer side fills ``fill``
    of the canvas side, but never enlarged more than ``max_upscale`` times, and centred. Faint
    alpha outside that box (soft edges) is kept. The shadow is the product's alpha, blurred,
    times the opacity, shifted by the offset.

    Args:
        cutout: ``RGBA`` product on transparency, trimmed or not (``RGB`` counts as fully
            opaque).
        canvas: Side of the square canvas in pixels.
        fill: Share of the canvas side the product's longer side fills, in (0, 1].
        max_upscale: Largest enlargement factor, to keep small sources from going soft.
        shadow: The drop shadow, or ``None`` for none.

    Returns:
        The placement, to pass to :func:`composite` for each background.

    Raises:
        ValueError: Neither ``RGBA`` nor ``RGB``, nothing opaque, or an option out of range.

    Example:
        >>> product = Image.new("RGBA", (400, 800), (200, 30, 30, 255))
        >>> place(product, 1600).product_box
        (460, 120, 1140, 1480)
    """
    if cutout.mode not in ("RGBA", "RGB"):
        raise ValueError(f"cutout must be RGBA (or RGB), got {cutout.mode}")
    if canvas < 1 or not 0.0 < fill <= 1.0 or max_upscale <= 0:
        raise ValueError(
            f"need canvas >= 1, 0 < fill <= 1 and max_upscale > 0, got {canvas}, {fill}, "
            f"{max_upscale}"
        )
    if cutout.mode == "RGB":
        cutout = cutout.convert("RGBA")
    box = alpha_bbox(cutout)
    if box is None:
        raise ValueError("cutout has no opaque pixels: nothing to place")
    extent = alpha_bbox(cutout, threshold=0) or box
    scale = min(fill * canvas / max(box[2] - box[0], box[3] - box[1]), max_upscale)
    centre = ((box[0] + box[2]) / 2, (box[1] + box[3]) / 2)

    def to_canvas(x: float, y: float) -> tuple[float, float]:
        return (x - centre[0]) * scale + canvas / 2, (y - centre[1]) * scale + canvas / 2

    target = _snap_out(*to_canvas(extent[0], extent[1]), *to_canvas(extent[2], extent[3]), canvas)
    product = _resample(cutout, target, centre, scale, canvas)
    left, top = to_canvas(box[0], box[1])
    right, bottom = to_canvas(box[2], box[3])
    product_box = (round(left), round(top), round(right), round(bottom))
    if shadow is None:
        return Placement(canvas, product, target[:2], product_box)
    mask, mask_position = _shadow(product.getchannel("A"), target[:2], shadow, canvas)
    return Placement(canvas, product, target[:2], product_box, mask, mask_position)


def _snap_out(left: float, top: float, right: float, bottom: float, canvas: int) -> Box:
    """Grow a float rectangle to whole pixels and clip it to the canvas."""
    return (
        max(0, math.floor(left)),
        max(0, math.floor(top)),
        min(canvas, math.ceil(right)),
        min(canvas, math.ceil(bottom)),
    )


def _resample(
    cutout: Image.Image,
    target: Box,
    centre: tuple[float, float],
    scale: float,
    canvas: int,
) -> Image.Image:
    """Render the canvas rectangle ``target`` from the cut-out, with sub-pixel alignment."""
    width, height = cutout.size
    source = (
        min(max(centre[0] + (target[0] - canvas / 2) / scale, 0.0), width),
        min(max(centre[1] + (target[1] - canvas / 2) / scale, 0.0), height),
        min(max(centre[0] + (target[2] - canvas / 2) / scale, 0.0), width),
        min(max(centre[1] + (target[3] - canvas / 2) / scale, 0.0), height),
    )
    # Crop (a cheap copy) before resizing: resize premultiplies the alpha of its whole input,
    # and the product is often a small part of a large cut-out. Keep the LANCZOS kernel's reach
    # (3 output pixels) around it as context.
    context = math.ceil(3 / min(scale, 1.0)) + 1
    crop = (
        max(0, math.floor(source[0]) - context),
        max(0, math.floor(source[1]) - context),
        min(width, math.ceil(source[2]) + context),
        min(height, math.ceil(source[3]) + context),
    )
    region = cutout.crop(crop)
    local = (source[0] - crop[0], source[1] - crop[1], source[2] - crop[0], source[3] - crop[1])
    size = (target[2] - target[0], target[3] - target[1])
    # reducing_gap: a large shrink (a 48 MP source) box-reduces first; >= 3 is documented as
    # indistinguishable from a plain LANCZOS resize.
    return region.resize(size, Image.Resampling.LANCZOS, box=local, reducing_gap=3.0)


def _shadow(
    alpha: Image.Image, position: tuple[int, int], shadow: Shadow, canvas: int
) -> tuple[Image.Image | None, tuple[int, int]]:
    """Blurred, faded, shifted alpha, clipped to the canvas, and where it goes."""
    factor = canvas / shadow.reference_size
    sigma = shadow.blur * factor
    # Blur at reduced resolution: the shadow has no detail finer than sigma, and a full-size
    # Gaussian on a 1600 px canvas costs ~5× more. Downscaling by `step` (a box filter) and
    # upscaling bilinearly add blur of their own, taken off the small Gaussian.
    step = max(1, int(sigma / 3))
    pad = math.ceil(3 * sigma) + step
    width = -(-(alpha.width + 2 * pad) // step) * step
    height = -(-(alpha.height + 2 * pad) // step) * step
    padded = Image.new("L", (width, height), 0)
    padded.paste(alpha, (pad, pad))
    small = padded.reduce(step) if step > 1 else padded
    small_sigma = math.sqrt(max(sigma**2 - step**2 / 4, 0.0)) / step
    small = small.filter(ImageFilter.GaussianBlur(small_sigma))
    small = small.point([round(v * shadow.opacity) for v in range(256)])
    mask = small.resize((width, height), Image.Resampling.BILINEAR) if step > 1 else small
    x = position[0] - pad + round(shadow.offset[0] * factor)
    y = position[1] - pad + round(shadow.offset[1] * factor)
    visible = _snap_out(x, y, x + width, y + height, canvas)
    if visible[2] <= visible[0] or visible[3] <= visible[1]:
        return None, (0, 0)  # shifted off the canvas entirely
    mask = mask.crop((visible[0] - x, visible[1] - y, visible[2] - x, visible[3] - y))
    return mask, visible[:2]


def composite(background: Image.Image, placement: Placement) -> Image.Image:
    """Paint a placed product and its shadow onto a background.

    The shadow darkens the background through a masked paste of black (a multiply by
    ``1 - mask``); the product is then pasted through its alpha. No full-canvas RGBA blend.

    Args:
        background: The canvas-sized background, ``RGB`` (other modes are converted).
        placement: From :func:`place` with the same canvas size.

    Returns:
        A new ``RGB`` image the size of the background; the background is not modified.

    Raises:
        ValueError: The background's size is not the placement's canvas.

    Example:
        >>> bg = Image.new("RGB", (1600, 1600), (240, 240, 240))
        >>> composite(bg, place(Image.new("RGBA", (400, 800), (200, 30, 30, 255)), 1600)).size
        (1600, 1600)
    """
    if background.size != (placement.canvas, placement.canvas):
        raise ValueError(
            f"background is {background.width}×{background.height} px but the placement was "
            f"made for a {placement.canvas}×{placement.canvas} px canvas"
        )
    out = background.copy() if background.mode == "RGB" else background.convert("RGB")
    if placement.shadow is not None:
        x, y = placement.shadow_position
        box = (x, y, x + placement.shadow.width, y + placement.shadow.height)
        out.paste((0, 0, 0), box, placement.shadow)
    out.paste(placement._rgb, placement.position, placement._alpha)
    return out

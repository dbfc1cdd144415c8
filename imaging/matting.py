"""Alpha matting around a 320×320 salient-object model (u2netp): input, alpha, mask, cutout.

Pure functions on Pillow images and numpy arrays; running the model is the caller's job
(``core.providers.local``). The base recipe is the one rembg uses (squashed Lanczos input,
ImageNet normalisation, min-max normalised output). On top of it, measured with
``benchmarks/segmentation.py``: mirror averaging (``mirror_average``), a zoomed second look at the
product when the photo holds more detail than the 320×320 input kept (``zoom_box``), and a colour
guided filter that snaps the upsampled alpha to the photo's edges (``prediction_to_alpha``). The
refinement is confined to what the whole-image pass supports (``_refine.confine``): it sharpens
that pass's edges but cannot add a region that pass left out.
Large photos are refined at ``WORKING_SIDE`` px at most and only the final 8-bit alpha is upscaled,
so memory stays bounded (no float arrays at full resolution).
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image

from imaging._refine import blend_zoom, confine, guided_refine, resize_map

__all__ = [
    "MODEL_SIZE",
    "WORKING_SIDE",
    "binary_mask",
    "cutout",
    "mirror_average",
    "normalize_prediction",
    "prediction_to_alpha",
    "to_model_input",
    "zoom_box",
]

MODEL_SIZE = 320
WORKING_SIDE = 2048  # the alpha is refined at most at this long side, then upscaled
_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
_BILINEAR = Image.Resampling.BILINEAR

Box = tuple[int, int, int, int]


def to_model_input(image: Image.Image, *, size: int = MODEL_SIZE) -> np.ndarray:
    """Build the model's input tensor: squashed to ``size`` × ``size``, ImageNet-normalised.

    Args:
        image: the photo, any mode Pillow converts to RGB.
        size: the model's square input side.

    Returns:
        A C-contiguous float32 array of shape ``(1, 3, size, size)`` (NCHW).

    Raises:
        ValueError: if ``size`` is not positive or the image is empty.

    Example:
        >>> to_model_input(Image.new("RGB", (64, 48), "red"), size=8).shape
        (1, 3, 8, 8)
    """
    if size < 1:
        raise ValueError(f"size must be positive, got {size}")
    if image.width < 1 or image.height < 1:
        raise ValueError("image is empty")
    rgb = image if image.mode == "RGB" else image.convert("RGB")
    # reducing_gap only matters above 3 × size: a box pre-reduction that keeps big photos fast.
    small = rgb.resize((size, size), Image.Resampling.LANCZOS, reducing_gap=3.0)
    x = np.asarray(small, dtype=np.float32)
    x = (x / max(float(x.max()), 1e-6) - _MEAN) / _STD
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None], dtype=np.float32)


def normalize_prediction(pred: np.ndarray) -> np.ndarray:
    """Min-max normalise a model output map to [0, 1].

    Args:
        pred: a map of shape ``(H, W)``, ``(1, H, W)`` or ``(1, 1, H, W)``.

    Returns:
        A float32 ``(H, W)`` array; all zeros when the map is constant.

    Raises:
        ValueError: if the shape is not one of the above or values are not finite.

    Example:
        >>> normalize_prediction(np.array([[2.0, 4.0]])).tolist()
        [[0.0, 1.0]]
    """
    p = np.asarray(pred, dtype=np.float32)
    if p.ndim < 2 or p.size == 0 or any(d != 1 for d in p.shape[:-2]):
        raise ValueError(f"expected a single 2-D map, got shape {p.shape}")
    p = p.reshape(p.shape[-2:])
    if not np.isfinite(p).all():
        raise ValueError("prediction holds NaN or infinite values")
    lo, hi = float(p.min()), float(p.max())
    if hi - lo < 1e-12:
        return np.zeros_like(p)
    return (p - lo) / (hi - lo)


def mirror_average(pred: np.ndarray, mirrored: np.ndarray) -> np.ndarray:
    """Average a prediction with the prediction of the horizontally mirrored image.

    Args:
        pred: the model's map for the image.
        mirrored: its map for ``image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)``.

    Returns:
        A float32 ``(H, W)`` map in [0, 1], in the image's orientation.

    Raises:
        ValueError: if the maps are malformed or differ in shape.

    Example:
        >>> mirror_average(np.array([[0.0, 1.0]]), np.array([[0.0, 1.0]])).tolist()
        [[0.5, 0.5]]
    """
    a, b = normalize_prediction(pred), normalize_prediction(mirrored)
    if a.shape != b.shape:
        raise ValueError(f"maps differ in shape: {a.shape} vs {b.shape}")
    return (a + b[:, ::-1]) / 2


def zoom_box(
    pred: np.ndarray, size: tuple[int, int], *, margin: float = 0.2, min_gain: float = 2.0
) -> Box | None:
    """Where a second, zoomed-in model pass would see the product in more detail.

    The box is the product's extent in ``pred`` plus ``margin`` of it on each side, in source
    pixels. It is returned only when a pass over it would see at least ``min_gain`` times more
    real source pixels of that region than the whole-image pass did, so small photos and
    products that fill the frame get no second pass.

    Args:
        pred: the whole-image model map.
        size: the source image size ``(width, height)``.
        margin: share of the product's width/height added on each side.
        min_gain: smallest worthwhile gain in seen source pixels (area ratio).

    Returns:
        ``(left, top, right, bottom)`` in source pixels, or ``None``.

    Raises:
        ValueError: on a malformed map, an empty size, a negative margin or ``min_gain < 1``.

    Example:
        >>> p = np.zeros((32, 32)); p[12:20, 12:20] = 1
        >>> zoom_box(p, (2000, 2000))
        (650, 650, 1350, 1350)
    """
    p = normalize_prediction(pred)
    width, height = size
    if width < 1 or height < 1 or margin < 0 or min_gain < 1:
        raise ValueError(f"bad arguments: size={size}, margin={margin}, min_gain={min_gain}")
    ys, xs = np.nonzero(p >= 0.5)
    if xs.size == 0:
        return None
    mh, mw = p.shape
    x0, x1 = xs.min() * width / mw, (xs.max() + 1) * width / mw
    y0, y1 = ys.min() * height / mh, (ys.max() + 1) * height / mh
    dx, dy = (x1 - x0) * margin, (y1 - y0) * margin
    left, top = max(0, math.floor(x0 - dx)), max(0, math.floor(y0 - dy))
    right, bottom = min(width, math.ceil(x1 + dx)), min(height, math.ceil(y1 + dy))
    gain = _detail_gain(right - left, width, mw) * _detail_gain(bottom - top, height, mh)
    return (left, top, right, bottom) if gain >= min_gain else None


def _detail_gain(crop: int, full: int, model: int) -> float:
    """Source pixels per crop pixel seen by a pass over ``crop`` relative to one over ``full``."""
    return min(1.0, model / crop) / min(1.0, model / full)


def prediction_to_alpha(
    pred: np.ndarray,
    size: tuple[int, int],
    *,
    guide: Image.Image | None = None,
    zoom: tuple[np.ndarray, Box] | None = None,
    mirrored: np.ndarray | None = None,
    sharpen: float = 2.0,
) -> Image.Image:
    """Turn a whole-image model map into a soft alpha at the source size.

    The map is min-max normalised and resized bilinearly; a second look refines it: a zoomed map
    blended in over its box (feathered where the box is inside the frame) or the mirrored
    image's map averaged in. With a ``guide`` a colour guided filter aligns the alpha with the
    photo's edges. The refined alpha is then confined to what ``pred`` supports (see
    ``_refine.confine``): it never exceeds ``pred``, so refinement cannot add a region the
    whole-image pass left out. ``sharpen`` steepens the ramp around 0.5 (the mask threshold stays
    where it was) so faint haze drops to 0 and edges stay anti-aliased.

    Args:
        pred: the whole-image model map (see ``normalize_prediction`` for shapes).
        size: the source size ``(width, height)``.
        guide: the source photo, for edge-aware refinement; ``None`` skips it.
        zoom: ``(map, box)`` from a pass over ``image.crop(box)`` (see ``zoom_box``).
        mirrored: the map for the horizontally mirrored image (see ``mirror_average``).
        sharpen: slope of the final ramp around 0.5; 1 keeps the values.

    Returns:
        An ``L`` image of ``size``.

    Raises:
        ValueError: on a malformed map, an empty size, a guide of another size, a zoom box
            outside the image, both ``zoom`` and ``mirrored``, or ``sharpen < 1``.

    Example:
        >>> prediction_to_alpha(np.eye(4), (8, 8)).size
        (8, 8)
    """
    width, height = size
    if width < 1 or height < 1 or sharpen < 1:
        raise ValueError(f"bad arguments: size={size}, sharpen={sharpen}")
    if guide is not None and guide.size != (width, height):
        raise ValueError(f"guide is {guide.size}, expected {size}")
    if zoom is not None and mirrored is not None:
        raise ValueError("pass one second look: zoom or mirrored, not both")
    base = normalize_prediction(pred)
    work = _working_size(size)
    alpha, second, detail = _second_look(base, work, size, zoom=zoom, mirrored=mirrored)
    if guide is not None:
        alpha = guided_refine(guide, alpha, radius=max(1.0, 2.0 * detail))
    alpha = confine(alpha, base, second)
    alpha = np.clip((alpha - 0.5) * sharpen + 0.5, 0.0, 1.0)
    out = Image.fromarray(np.rint(alpha * 255.0).astype(np.uint8))
    return out if work == (width, height) else out.resize((width, height), _BILINEAR)


def _second_look(
    base: np.ndarray,
    work: tuple[int, int],
    size: tuple[int, int],
    *,
    zoom: tuple[np.ndarray, Box] | None,
    mirrored: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray | None, float]:
    """The alpha to refine at working size, the second look's own map (``None`` without one),
    and the working pixels per model pixel of the finest map (the guided filter's scale)."""
    first = resize_map(base, work)
    detail = max(work) / max(base.shape)
    if zoom is not None:
        zmap = normalize_prediction(zoom[0])
        blended, side = blend_zoom(first, zmap, zoom[1], size)
        return blended, blended, side / max(zmap.shape)
    if mirrored is not None:
        averaged = mirror_average(base, mirrored)  # also checks the shapes
        other = normalize_prediction(mirrored)[:, ::-1]
        return resize_map(averaged, work), resize_map(other, work), detail
    return first, None, detail


def binary_mask(alpha: Image.Image, *, threshold: int = 128) -> Image.Image:
    """Threshold an alpha into a 255/0 mask.

    Args:
        alpha: an ``L`` image.
        threshold: alpha values at or above it become 255, the rest 0.

    Returns:
        A new ``L`` image of the same size holding only 0 and 255.

    Raises:
        ValueError: if ``alpha`` is not ``L`` or ``threshold`` is outside 1–255.

    Example:
        >>> binary_mask(Image.new("L", (2, 2), 200)).getextrema()
        (255, 255)
    """
    if alpha.mode != "L":
        raise ValueError(f"alpha must be mode L, got {alpha.mode}")
    if not 1 <= threshold <= 255:
        raise ValueError(f"threshold must be in 1..255, got {threshold}")
    return alpha.point([255 if v >= threshold else 0 for v in range(256)])


def cutout(
    image: Image.Image, alpha: Image.Image, *, margin: float = 0.02
) -> tuple[Image.Image, Box]:
    """Cut the product out: RGBA, trimmed to its bounding box plus a margin.

    Args:
        image: the source photo (converted to RGB; an existing alpha is ignored).
        alpha: soft ``L`` alpha of the same size; the product is where it is ≥ 128.
        margin: padding on each side as a share of the product's longer bbox side.

    Returns:
        ``(cutout, bbox)``: the RGBA cutout carrying ``alpha``, and the product's bounding box
        ``(left, top, right, bottom)`` in source pixels (right/bottom exclusive).

    Raises:
        ValueError: if the sizes differ, ``alpha`` is not ``L``, ``margin`` is outside 0–1, or
            the alpha is empty (no pixel reaches 128).

    Example:
        >>> a = Image.new("L", (10, 10)); a.paste(255, (2, 3, 6, 8))
        >>> cutout(Image.new("RGB", (10, 10)), a, margin=0)[1]
        (2, 3, 6, 8)
    """
    if alpha.mode != "L" or alpha.size != image.size:
        raise ValueError(f"alpha must be mode L and {image.size}, got {alpha.mode} {alpha.size}")
    if not 0 <= margin <= 1:
        raise ValueError(f"margin must be in 0..1, got {margin}")
    bbox = binary_mask(alpha).getbbox()
    if bbox is None:
        raise ValueError("alpha is empty: no product pixel")
    left, top, right, bottom = bbox
    pad = round(margin * max(right - left, bottom - top))
    box = (
        max(0, left - pad),
        max(0, top - pad),
        min(image.width, right + pad),
        min(image.height, bottom + pad),
    )
    out = image.crop(box)
    out = out if out.mode == "RGB" else out.convert("RGB")
    out.putalpha(alpha.crop(box))
    return out, bbox


def _working_size(size: tuple[int, int]) -> tuple[int, int]:
    scale = min(1.0, WORKING_SIDE / max(size))
    return max(1, round(size[0] * scale)), max(1, round(size[1] * scale))

"""Alpha refinement internals for ``imaging.matting``: zoom blending, the guided filter, confining.

The colour guided filter follows He, Sun & Tang, "Guided Image Filtering" (2013); box means come
from cumulative sums, so the cost does not depend on the radius. Everything is float32.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageFilter

_GUIDE_SIDE = 512  # coefficients are solved at most at this long side
_EPS = 1e-3  # regulariser: colour variance below this counts as a flat region
_BILINEAR = Image.Resampling.BILINEAR


Box = tuple[int, int, int, int]


def blend_zoom(
    alpha: np.ndarray, zoom_map: np.ndarray, box: Box, size: tuple[int, int]
) -> tuple[np.ndarray, int]:
    """Blend a zoomed pass's map over ``box`` of a working-resolution alpha.

    Args:
        alpha: float32 ``(h, w)`` alpha at working resolution.
        zoom_map: normalised map of the pass over ``box``.
        box: the zoomed region in source pixels.
        size: the source size ``(width, height)``.

    Returns:
        The blended alpha, and the box's longer side in working pixels.

    Raises:
        ValueError: if ``box`` is not inside the image.
    """
    left, top, right, bottom = box
    if not (0 <= left < right <= size[0] and 0 <= top < bottom <= size[1]):
        raise ValueError(f"zoom box {box} is not inside the image {size}")
    h, w = alpha.shape
    sx, sy = w / size[0], h / size[1]
    x0, y0 = min(round(left * sx), w - 1), min(round(top * sy), h - 1)
    x1, y1 = max(x0 + 1, round(right * sx)), max(y0 + 1, round(bottom * sy))
    inner = resize_map(zoom_map, (x1 - x0, y1 - y0))
    # Fade the zoomed map in where the box edge lies inside the frame, so no seam shows.
    weight = np.minimum(_ramp(y1 - y0, y0 > 0, y1 < h)[:, None], _ramp(x1 - x0, x0 > 0, x1 < w))
    out = alpha.copy()
    region = out[y0:y1, x0:x1]
    region += weight * (inner - region)
    return out, max(x1 - x0, y1 - y0)


def confine(
    alpha: np.ndarray,
    first: np.ndarray,
    second: np.ndarray | None,
    *,
    core_band: int = 1,
    sure_background: float = 0.1,
) -> np.ndarray:
    """Keep a refined alpha within what the whole-image (first) pass supports.

    A second look (zoomed or mirrored) and the guided filter sharpen the first pass's edges, but
    on their own they also bring in whole regions the first pass had left out (a block of printed
    text beside the product, clutter in the zoomed box) and drop parts it was sure of. So:

    - the alpha never exceeds the first pass's map (upsampled): nothing the first pass rejected
      can become product;
    - deeper than ``core_band`` model pixels inside the first pass's mask, the product stays
      unless the second look is sure it is background (below ``sure_background``): a removal
      there needs confident evidence, an unsure second look (a dim shoulder of a bottle) is not.

    Measured with ``benchmarks/segmentation.py --baseline --hard`` (docs/benchmarks.md).

    Args:
        alpha: the refined float32 ``(h, w)`` alpha.
        first: the first pass's normalised map at model resolution.
        second: the second look's map at ``alpha``'s size, or ``None`` when there was none.
        core_band: depth in model pixels of the edge band where the refinement moves freely.
        sure_background: second-look value below which a first-pass region may be removed.

    Returns:
        The confined float32 alpha.
    """
    size = (alpha.shape[1], alpha.shape[0])
    out = np.minimum(alpha, resize_map(first, size))
    if second is None:
        return out
    mask = Image.fromarray(np.where(first >= 0.5, 255, 0).astype(np.uint8))
    core = mask.filter(ImageFilter.MinFilter(2 * core_band + 1)) if core_band > 0 else mask
    floor = resize_map(np.asarray(core, dtype=np.float32) / 255.0, size)
    return np.maximum(out, np.where(second >= sure_background, floor, 0.0))


def _ramp(n: int, fade_start: bool, fade_end: bool) -> np.ndarray:
    """1 inside, falling linearly to 0 over the outer 10% at the ends that fade."""
    width = max(1.0, 0.1 * n)
    pos = np.arange(n, dtype=np.float32) + 0.5
    w = np.ones(n, dtype=np.float32)
    if fade_start:
        w = np.minimum(w, pos / width)
    if fade_end:
        w = np.minimum(w, (n - pos) / width)
    return w


def guided_refine(guide: Image.Image, alpha: np.ndarray, *, radius: float) -> np.ndarray:
    """Edge-aware refinement of ``alpha`` with the colour guided filter, fast variant.

    The filter's linear coefficients are solved on a copy at most ``_GUIDE_SIDE`` px on the long
    side, upsampled and applied to the guide at the alpha's size, as in He & Sun, "Fast Guided
    Filter" (2015).

    Args:
        guide: the photo (any size; it is resized to the alpha's).
        alpha: float32 ``(h, w)`` alpha in [0, 1].
        radius: window radius in ``alpha`` pixels.

    Returns:
        The refined float32 ``(h, w)`` alpha (not clipped).
    """
    h, w = alpha.shape
    scale = min(1.0, _GUIDE_SIDE / max(w, h))
    low = (max(1, round(w * scale)), max(1, round(h * scale)))
    # Shrink a big photo once; the coefficient grid is then taken from the working copy.
    work_guide = _resized(guide, (w, h))
    low_guide = _guide_planes(_resized(work_guide, low))
    coef = _guided_coefficients(low_guide, resize_map(alpha, low), max(1, round(radius * scale)))
    if low == (w, h):
        return coef[3] + (coef[:3] * low_guide).sum(axis=0)
    coef = np.stack([resize_map(c, (w, h)) for c in coef])
    return coef[3] + (coef[:3] * _guide_planes(work_guide)).sum(axis=0)


def _resized(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    if image.size == size:
        return image
    return image.resize(size, _BILINEAR, reducing_gap=1.5)


def _guide_planes(guide: Image.Image) -> np.ndarray:
    """The guide as (3, h, w) float32 centred on 0."""
    rgb = guide if guide.mode == "RGB" else guide.convert("RGB")
    return np.asarray(rgb, dtype=np.float32).transpose(2, 0, 1) / 255.0 - 0.5


def _guided_coefficients(g: np.ndarray, p: np.ndarray, r: int) -> np.ndarray:
    """Box-averaged linear coefficients (a_r, a_g, a_b, b) with ``p ≈ a · g + b`` per window."""
    m = _box_mean(np.stack([*g, p, *(g * p), g[0] * g[0], g[0] * g[1], g[0] * g[2],
                            g[1] * g[1], g[1] * g[2], g[2] * g[2]]), r)  # fmt: skip
    mg, mp = m[:3], m[3]
    c0, c1, c2 = m[4:7] - mg * mp
    s00 = m[7] - mg[0] * mg[0] + _EPS
    s01, s02 = m[8] - mg[0] * mg[1], m[9] - mg[0] * mg[2]
    s11 = m[10] - mg[1] * mg[1] + _EPS
    s12, s22 = m[11] - mg[1] * mg[2], m[12] - mg[2] * mg[2] + _EPS
    # Inverse of the symmetric 3×3 covariance by cofactors: far cheaper than a batched solve.
    i00, i01, i02 = s11 * s22 - s12 * s12, s02 * s12 - s01 * s22, s01 * s12 - s02 * s11
    i11, i12, i22 = s00 * s22 - s02 * s02, s01 * s02 - s00 * s12, s00 * s11 - s01 * s01
    det = s00 * i00 + s01 * i01 + s02 * i02
    coef = np.empty((4, *p.shape), dtype=np.float32)
    coef[0] = (i00 * c0 + i01 * c1 + i02 * c2) / det
    coef[1] = (i01 * c0 + i11 * c1 + i12 * c2) / det
    coef[2] = (i02 * c0 + i12 * c1 + i22 * c2) / det
    coef[3] = mp - (coef[:3] * mg).sum(axis=0)
    return _box_mean(coef, r)


def _box_mean(a: np.ndarray, r: int) -> np.ndarray:
    """Mean over a (2r+1)² window on the last two axes, shrunk at the borders (cumulative sums)."""
    h, w = a.shape[-2:]
    counts = _window_counts(h, r)[:, None] * _window_counts(w, r)[None, :]
    return _box_sum(_box_sum(a, r, a.ndim - 2), r, a.ndim - 1) / counts


def _window_counts(n: int, r: int) -> np.ndarray:
    r = min(r, (n - 1) // 2)
    i = np.arange(n)
    return (np.minimum(i + r, n - 1) - np.maximum(i - r, 0) + 1).astype(np.float32)


def _box_sum(a: np.ndarray, r: int, axis: int) -> np.ndarray:
    n = a.shape[axis]
    r = min(r, (n - 1) // 2)  # keeps the three slices below valid; tiny maps need no more
    c = np.moveaxis(np.cumsum(a, axis=axis, dtype=np.float32), axis, 0)
    out = np.empty_like(c)
    out[: r + 1] = c[r : 2 * r + 1]
    out[r + 1 : n - r] = c[2 * r + 1 :] - c[: n - 2 * r - 1]
    out[n - r :] = c[n - 1] - c[n - 2 * r - 1 : n - r - 1]
    return np.moveaxis(out, 0, axis)


def resize_map(values: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of a float32 map to ``size`` = (width, height)."""
    if values.shape == (size[1], size[0]):
        return values.astype(np.float32, copy=True)
    image = Image.fromarray(np.ascontiguousarray(values, dtype=np.float32))
    return np.asarray(image.resize(size, _BILINEAR), dtype=np.float32).copy()

"""Mask checks without ground truth: does a cut-out look like one product, cleanly cut?

Each check is a pure function of the soft alpha (``L``, source size, 255 = product) returning a
:class:`Check` (name, measured value, threshold, passed, detail). They work on a copy at most
``CHECK_SIDE`` px on the long side, so their cost does not grow with the photo. Thresholds are
keyword arguments; the defaults are the ones chosen with ``benchmarks/quality.py`` on the
segmentation dev set and the built hard cases (docs/benchmarks.md#quality), and the settings
``PACKSHOT_QUALITY_*`` pass them in. :func:`summarise` turns a list of checks into the quality
object of docs/architecture.md (verdict, score, checks).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np
from PIL import Image, ImageFilter

__all__ = [
    "CHECK_SIDE",
    "Check",
    "MaskThresholds",
    "Quality",
    "foreground_share",
    "fragments",
    "mask_checks",
    "soft_share",
    "source_alpha",
    "strokes",
    "summarise",
    "touches_frame",
    "view_agreement",
]

CHECK_SIDE = 256  # masks are checked at most at this long side
Segment = Callable[[Image.Image], Image.Image]


@dataclass(frozen=True)
class Check:
    """One named check: what was measured, the limit, whether it passed, and why in words."""

    name: str
    value: float
    threshold: float
    passed: bool
    detail: str

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True)
class Quality:
    """``verdict`` is ``review`` when any check failed; ``score`` is the share that passed."""

    verdict: str
    score: float
    checks: tuple[Check, ...]


@dataclass(frozen=True)
class MaskThresholds:
    """The limits of :func:`mask_checks` (shares are 0..1; see each check)."""

    soft_alpha_max: float = 0.12
    frame_max: float = 0.05
    foreground_min: float = 0.03
    foreground_max: float = 0.7
    fragments_max: float = 0.1
    strokes_max: float = 0.01


def mask_checks(alpha: Image.Image, limits: MaskThresholds | None = None) -> list[Check]:
    """Every mask check that needs nothing but the alpha, in a fixed order.

    Example:
        >>> a = Image.new("L", (40, 40)); a.paste(255, (10, 10, 30, 30))
        >>> summarise(mask_checks(a)).verdict
        'pass'
    """
    t = limits or MaskThresholds()
    return [
        soft_share(alpha, max_share=t.soft_alpha_max),
        touches_frame(alpha, max_share=t.frame_max),
        *foreground_share(alpha, min_share=t.foreground_min, max_share=t.foreground_max),
        fragments(alpha, max_share=t.fragments_max),
        strokes(alpha, max_share=t.strokes_max),
    ]


def source_alpha(cutout: Image.Image, mask: Image.Image) -> Image.Image:
    """The cut-out's soft alpha put back at the photo's size, as the mask checks need it.

    A cut-out is trimmed to the product plus a margin (``imaging.matting.cutout``); its product
    box (alpha ≥ 128) lines up with the binary mask's box, which is at the source size.

    Example:
        >>> mask = Image.new("L", (20, 10)); mask.paste(255, (12, 2, 16, 8))
        >>> cut = Image.new("RGBA", (6, 8), (0, 0, 0, 0))
        >>> cut.paste((9, 9, 9, 200), (1, 1, 5, 7))
        >>> source_alpha(cut, mask).getbbox()
        (12, 2, 16, 8)
    """
    alpha = cutout.getchannel("A") if cutout.mode in ("RGBA", "LA") else cutout.convert("L")
    inner = alpha.point(lambda v: 255 if v >= 128 else 0).getbbox()
    outer = mask.convert("L").getbbox()
    if inner is None or outer is None or alpha.size == mask.size:
        return alpha if alpha.size == mask.size else mask.convert("L")
    placed = Image.new("L", mask.size, 0)
    placed.paste(alpha, (outer[0] - inner[0], outer[1] - inner[1]))
    return placed


def summarise(checks: Sequence[Check]) -> Quality:
    """The quality object for ``checks``: verdict ``pass`` only when every check passed.

    Example:
        >>> summarise([Check("a", 1.0, 2.0, True, "ok")]).verdict
        'pass'
    """
    if not checks:
        return Quality("pass", 1.0, ())
    passed = sum(c.passed for c in checks)
    verdict = "pass" if passed == len(checks) else "review"
    return Quality(verdict, round(passed / len(checks), 4), tuple(checks))


def soft_share(alpha: Image.Image, *, max_share: float = 0.12) -> Check:
    """Soft alpha (neither clearly product nor background: 32..223) per product pixel.

    A segmenter that is unsure leaves a wide haze; a clean cut-out has a thin anti-aliased rim.

    Example:
        >>> soft_share(Image.new("L", (8, 8), 255)).passed
        True
    """
    _check_unit("max_share", max_share)
    a = np.asarray(_small(_alpha(alpha)))
    product = int((a >= 128).sum())
    value = float(((a >= 32) & (a < 224)).sum()) / max(product, 1)
    detail = f"{value:.0%} of the product area is half-transparent (at most {max_share:.0%})"
    return Check("soft_alpha", round(value, 4), max_share, value <= max_share, detail)


def touches_frame(alpha: Image.Image, *, max_share: float = 0.05) -> Check:
    """Share of the frame's edge pixels that are product: a cut-out running off the photo.

    Example:
        >>> touches_frame(Image.new("L", (8, 8), 255)).passed
        False
    """
    _check_unit("max_share", max_share)
    m = _mask(alpha)
    edge = np.concatenate([m[0], m[-1], m[1:-1, 0], m[1:-1, -1]])
    value = float(edge.mean())
    detail = f"the product covers {value:.0%} of the photo's edge (at most {max_share:.0%})"
    return Check("touches_frame", round(value, 4), max_share, value <= max_share, detail)


def foreground_share(
    alpha: Image.Image, *, min_share: float = 0.03, max_share: float = 0.7
) -> list[Check]:
    """Two checks: the product covers at least ``min_share`` and at most ``max_share`` of the photo.

    Example:
        >>> [c.passed for c in foreground_share(Image.new("L", (8, 8), 0))]
        [False, True]
    """
    _check_unit("min_share", min_share)
    _check_unit("max_share", max_share)
    value = round(float(_mask(alpha).mean()), 4)
    return [
        Check(
            "foreground_min",
            value,
            min_share,
            value >= min_share,
            f"the product covers {value:.1%} of the photo (at least {min_share:.1%})",
        ),
        Check(
            "foreground_max",
            value,
            max_share,
            value <= max_share,
            f"the product covers {value:.1%} of the photo (at most {max_share:.1%})",
        ),
    ]


def fragments(alpha: Image.Image, *, max_share: float = 0.1) -> Check:
    """Share of the product area outside its largest connected part.

    One product is one part; a second object, a piece of the scene or scattered letters are more.
    Parts smaller than 0.2 % of the product are specks and ignored.

    Example:
        >>> a = Image.new("L", (20, 10)); a.paste(255, (1, 1, 8, 9)); a.paste(255, (12, 1, 19, 9))
        >>> fragments(a).value
        0.5
    """
    _check_unit("max_share", max_share)
    areas = sorted(_part_areas(_mask(alpha)), reverse=True)
    total = sum(areas)
    rest = sum(a for a in areas[1:] if a >= 0.002 * total)
    value = rest / total if total else 0.0
    detail = (
        f"{value:.0%} of the product lies outside its largest part, in "
        f"{sum(1 for a in areas[1:] if a >= 0.002 * total)} other part(s) (at most {max_share:.0%})"
    )
    return Check("fragments", round(value, 4), max_share, value <= max_share, detail)


def strokes(alpha: Image.Image, *, max_share: float = 0.01) -> Check:
    """Share of the product area in thin strokes (printed letters, lines), which an opening removes.

    The mask is opened with a 3×3 square at ``CHECK_SIDE``: parts thinner than about 1 % of the
    photo's long side vanish. A solid product keeps nearly all of its area.

    Example:
        >>> a = Image.new("L", (64, 64)); a.paste(255, (0, 0, 64, 1))
        >>> strokes(a).passed
        False
    """
    _check_unit("max_share", max_share)
    small = _small(_alpha(alpha)).point(lambda v: 255 if v >= 128 else 0)
    opened = small.filter(ImageFilter.MinFilter(3)).filter(ImageFilter.MaxFilter(3))
    before = int((np.asarray(small) > 0).sum())
    after = int((np.asarray(opened) > 0).sum())
    value = (before - after) / before if before else 0.0
    detail = f"{value:.0%} of the product area is thin strokes (at most {max_share:.0%})"
    return Check("strokes", round(value, 4), max_share, value <= max_share, detail)


def view_agreement(
    image: Image.Image, alpha: Image.Image, segment: Segment, *, min_iou: float = 0.9
) -> Check:
    """IoU between the cut-out and a second, independent look at the mirrored photo.

    ``segment`` is any function from a photo to its soft ``L`` alpha (the same size); the
    mirrored photo's result is mirrored back and compared. Where two views disagree the segmenter
    is unsure. Costs one more segmentation.

    Raises:
        ValueError: ``segment`` returned an image of another size, or ``min_iou`` is not in 0..1.
    """
    _check_unit("min_iou", min_iou)
    second = segment(image.transpose(Image.Transpose.FLIP_LEFT_RIGHT))
    if second.size != image.size:
        raise ValueError(f"segment returned {second.size}, expected {image.size}")
    a = _mask(alpha)
    b = _mask(second.transpose(Image.Transpose.FLIP_LEFT_RIGHT))
    union = int((a | b).sum())
    value = float((a & b).sum()) / union if union else 1.0
    detail = f"a mirrored second look agrees on {value:.0%} of the product (at least {min_iou:.0%})"
    return Check("view_agreement", round(value, 4), min_iou, value >= min_iou, detail)


def _check_unit(name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be within 0..1, got {value}")


def _alpha(alpha: Image.Image) -> Image.Image:
    if alpha.mode == "L":
        return alpha
    if alpha.mode in ("RGBA", "LA"):
        return alpha.getchannel("A")
    raise ValueError(f"need an L alpha (or RGBA/LA), got {alpha.mode}")


def _small(alpha: Image.Image) -> Image.Image:
    scale = CHECK_SIDE / max(alpha.size)
    if scale >= 1:
        return alpha
    size = (max(1, round(alpha.width * scale)), max(1, round(alpha.height * scale)))
    return alpha.resize(size, Image.Resampling.BOX)


def _mask(alpha: Image.Image) -> np.ndarray:
    return np.asarray(_small(_alpha(alpha))) >= 128


def _part_areas(mask: np.ndarray) -> list[int]:
    """Areas of the 4-connected parts of a boolean mask, by union-find over row runs."""
    h, w = mask.shape
    padded = np.zeros((h, w + 2), dtype=np.int8)
    padded[:, 1:-1] = mask
    step = np.diff(padded, axis=1)
    rows, starts = np.nonzero(step == 1)
    _, ends = np.nonzero(step == -1)  # row-major order: ends pair with starts
    parent = list(range(len(rows)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    row_first = np.searchsorted(rows, np.arange(h + 1))
    for r in range(1, h):
        i, j = row_first[r - 1], row_first[r]  # runs of the row above, of this row
        i_end, j_end = j, row_first[r + 1]
        while i < i_end and j < j_end:
            if starts[i] < ends[j] and starts[j] < ends[i]:
                parent[root(i)] = root(j)
            if ends[i] < ends[j]:
                i += 1
            else:
                j += 1
    areas: dict[int, int] = {}
    for k, length in enumerate((ends - starts).tolist()):
        top = root(k)
        areas[top] = areas.get(top, 0) + length
    return list(areas.values())

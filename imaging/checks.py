"""Quality gates: catch a failed segmentation or an empty image before it is published."""

from __future__ import annotations

from PIL import Image, ImageStat

__all__ = ["QualityError", "alpha_coverage", "check_cutout", "is_blank"]


class QualityError(ValueError):
    """An intermediate image is technically valid but unusable (e.g. an empty cut-out)."""


def alpha_coverage(image: Image.Image) -> float:
    """Share of pixels that are mostly opaque (alpha ≥ 128).

    Args:
        image: ``RGBA`` or ``LA``, or an ``L`` mask (255 = product).

    Returns:
        A fraction from 0.0 to 1.0.

    Raises:
        ValueError: The image has no alpha channel and is not a mask.

    Example:
        >>> im = Image.new("RGBA", (10, 10))
        >>> im.paste((0, 0, 0, 255), (0, 0, 5, 10))
        >>> alpha_coverage(im)
        0.5
    """
    if image.mode in ("RGBA", "LA"):
        alpha = image.getchannel("A")
    elif image.mode == "L":
        alpha = image
    else:
        raise ValueError(f"alpha_coverage needs RGBA, LA or an L mask, got {image.mode}")
    histogram = alpha.histogram()
    return sum(histogram[128:]) / (image.width * image.height)


def is_blank(image: Image.Image, *, tolerance: float = 2.0) -> bool:
    """Whether an image is (nearly) one flat tone: luminance std dev below ``tolerance``.

    Args:
        image: Any image; alpha is ignored.
        tolerance: Largest standard deviation of 8-bit luminance still counted as blank.

    Returns:
        ``True`` for a flat image.

    Raises:
        ValueError: ``tolerance`` is negative.

    Example:
        >>> is_blank(Image.new("RGB", (8, 8), (250, 250, 250)))
        True
    """
    if tolerance < 0:
        raise ValueError(f"tolerance must be >= 0, got {tolerance}")
    luminance = image if image.mode == "L" else image.convert("RGB").convert("L")
    return bool(ImageStat.Stat(luminance).stddev[0] < tolerance)


def check_cutout(
    cutout: Image.Image, *, min_coverage: float = 0.005, max_coverage: float = 0.995
) -> None:
    """Refuse a cut-out in which the segmenter found nothing, or kept everything.

    Args:
        cutout: ``RGBA`` cut-out (or its ``L`` mask).
        min_coverage: Smallest accepted share of opaque pixels.
        max_coverage: Largest accepted share; above it nothing was removed.

    Raises:
        ValueError: Not an image with alpha, or the bounds are not 0 ≤ min < max ≤ 1.
        QualityError: Coverage outside the bounds.

    Example:
        >>> check_cutout(Image.new("RGBA", (10, 10)))
        Traceback (most recent call last):
        ...
        imaging.checks.QualityError: segmentation found no product: 0.0% of the cut-out is opaque, at least 0.5% expected
    """  # noqa: E501
    if not 0.0 <= min_coverage < max_coverage <= 1.0:
        raise ValueError(
            f"need 0 <= min_coverage < max_coverage <= 1, got {min_coverage}, {max_coverage}"
        )
    coverage = alpha_coverage(cutout)
    if coverage < min_coverage:
        raise QualityError(
            f"segmentation found no product: {coverage:.1%} of the cut-out is opaque, "
            f"at least {min_coverage:.1%} expected"
        )
    if coverage > max_coverage:
        raise QualityError(
            f"segmentation removed no background: {coverage:.1%} of the cut-out is opaque, "
            f"at most {max_coverage:.1%} expected"
        )

"""imaging.checks: alpha coverage, blank images, cut-out gate."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from imaging.checks import QualityError, alpha_coverage, check_cutout, is_blank


def cutout(opaque_rows: int, size: int = 100) -> Image.Image:
    image = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    if opaque_rows:
        image.paste((10, 20, 30, 255), (0, 0, size, opaque_rows))
    return image


def test_alpha_coverage_counts_mostly_opaque_pixels():
    image = cutout(25)
    image.paste((0, 0, 0, 127), (0, 25, 100, 50))  # just below the line: not counted
    image.paste((0, 0, 0, 128), (0, 50, 100, 60))  # on it: counted
    assert alpha_coverage(image) == pytest.approx(0.35)


def test_alpha_coverage_of_masks_and_la():
    assert alpha_coverage(Image.new("L", (10, 10), 255)) == 1.0
    assert alpha_coverage(Image.new("LA", (10, 10), (0, 0))) == 0.0
    with pytest.raises(ValueError):
        alpha_coverage(Image.new("RGB", (10, 10)))


def test_is_blank():
    assert is_blank(Image.new("RGB", (64, 64), (240, 240, 240)))
    noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    assert not is_blank(Image.fromarray(noise))
    faint = Image.new("L", (64, 64), 100)
    faint.paste(101, (0, 0, 32, 64))  # std dev 0.5
    assert is_blank(faint)
    assert not is_blank(faint, tolerance=0.4)
    with pytest.raises(ValueError):
        is_blank(faint, tolerance=-1)


def test_check_cutout_accepts_a_product():
    check_cutout(cutout(40))


def test_check_cutout_refuses_nothing_found():
    with pytest.raises(QualityError, match=r"found no product: 0\.0%"):
        check_cutout(cutout(0))


def test_check_cutout_refuses_nothing_removed():
    with pytest.raises(QualityError, match=r"removed no background: 100\.0%"):
        check_cutout(cutout(100))


def test_check_cutout_thresholds_and_errors():
    check_cutout(cutout(1), min_coverage=0.01)
    with pytest.raises(QualityError):
        check_cutout(cutout(1), min_coverage=0.02)
    assert issubclass(QualityError, ValueError)
    with pytest.raises(ValueError):
        check_cutout(cutout(10), min_coverage=0.5, max_coverage=0.4)

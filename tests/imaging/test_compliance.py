"""imaging.compliance: product fidelity, the white channel's rules, derivative checks."""

from __future__ import annotations

import io

import pytest
from PIL import Image, ImageCms

from imaging.compliance import derivative_matches, product_fidelity, white_compliance
from imaging.composite import composite, place


def product(size=(300, 500)) -> Image.Image:
    cut = Image.new("RGBA", size, (180, 40, 30, 255))
    cut.paste((20, 90, 160, 255), (50, 50, 250, 200))  # a label, so a resize could blur it
    return cut


def jpeg(image: Image.Image, **options) -> bytes:
    buf = io.BytesIO()
    image.save(buf, "JPEG", quality=95, **options)
    return buf.getvalue()


def test_fidelity_passes_the_placed_cutout_and_fails_an_altered_product():
    placement = place(product(), 400, shadow=None)
    white = Image.new("RGB", (400, 400), "white")
    good = composite(white, placement)
    assert product_fidelity(good, placement).value == 0.0
    altered = good.copy()
    altered.paste((0, 255, 0), placement.product_box)  # a generator painted over the product
    check = product_fidelity(altered, placement, max_error=3.0)
    assert not check.passed and check.value > 100 and check.name == "product_fidelity"


def test_fidelity_refuses_a_composite_of_another_size():
    with pytest.raises(ValueError, match="canvas"):
        product_fidelity(Image.new("RGB", (10, 10)), place(product(), 400, shadow=None))


def test_white_main_image_passes_every_rule():
    placement = place(product((600, 1000)), 1600)  # large enough to fill 85 % without upscaling
    data = jpeg(composite(Image.new("RGB", (1600, 1600), "white"), placement))
    checks = white_compliance(data, placement)
    assert [c.name for c in checks if not c.passed] == []
    assert {c.name for c in checks} >= {"white_background", "white_fill", "white_min_side"}


def test_white_main_image_fails_each_rule_it_breaks():
    small = place(product(), 1200, fill=0.6)
    grey = composite(Image.new("RGB", (1200, 1200), (250, 250, 250)), small)
    buf = io.BytesIO()
    grey.save(buf, "PNG")
    failed = {c.name for c in white_compliance(buf.getvalue(), small) if not c.passed}
    assert failed == {"white_format", "white_min_side", "white_fill", "white_background"}


def test_white_main_image_with_another_colour_profile_is_not_srgb():
    placement = place(product(), 1600)
    image = composite(Image.new("RGB", (1600, 1600), "white"), placement)
    lab = ImageCms.ImageCmsProfile(ImageCms.createProfile("LAB")).tobytes()
    checks = {c.name: c for c in white_compliance(jpeg(image, icc_profile=lab), placement)}
    assert not checks["white_srgb"].passed


def test_derivative_matches_the_claimed_size_and_format():
    data = jpeg(Image.new("RGB", (64, 48)))
    assert derivative_matches(data, width=64, height=48, fmt="jpeg").passed
    assert not derivative_matches(data, width=64, height=48, fmt="webp").passed
    assert not derivative_matches(data, width=48, height=64, fmt="jpeg").passed
    broken = derivative_matches(b"not an image", width=1, height=1, fmt="jpeg")
    assert not broken.passed and "not a readable image" in broken.detail

"""imaging.geometry: alpha bounding boxes, trimming, downscale-to-fit."""

from __future__ import annotations

import pytest
from PIL import Image

from imaging.geometry import alpha_bbox, contain_size, crop_to_alpha, fit


def product(size=(100, 80), box=(20, 10, 50, 70), alpha=255) -> Image.Image:
    image = Image.new("RGBA", size, (0, 0, 0, 0))
    image.paste((200, 30, 30, alpha), box)
    return image


def test_alpha_bbox_finds_the_opaque_region():
    assert alpha_bbox(product()) == (20, 10, 50, 70)


def test_alpha_bbox_ignores_faint_haze_unless_asked():
    image = product()
    image.putpixel((95, 75), (0, 0, 0, 5))
    assert alpha_bbox(image) == (20, 10, 50, 70)
    assert alpha_bbox(image, threshold=0) == (20, 10, 96, 76)
    assert alpha_bbox(image, threshold=4) == (20, 10, 96, 76)


def test_alpha_bbox_of_nothing_is_none():
    assert alpha_bbox(Image.new("RGBA", (10, 10))) is None
    assert alpha_bbox(Image.new("LA", (10, 10), (0, 8))) is None


@pytest.mark.parametrize(("mode", "threshold"), [("RGB", 8), ("RGBA", 255), ("RGBA", -1)])
def test_alpha_bbox_rejects_bad_arguments(mode, threshold):
    with pytest.raises(ValueError):
        alpha_bbox(Image.new(mode, (4, 4)), threshold=threshold)


def test_crop_to_alpha_keeps_a_margin_of_the_longer_side():
    cropped = crop_to_alpha(product(), margin=0.1)  # box 30×60 → 6 px each side
    assert cropped.size == (42, 72)
    assert alpha_bbox(cropped) == (6, 6, 36, 66)
    assert cropped.mode == "RGBA"


def test_crop_to_alpha_clamps_to_the_image():
    cropped = crop_to_alpha(product(box=(0, 0, 30, 60)), margin=0.5)
    assert cropped.size == (60, 80)
    assert alpha_bbox(cropped) == (0, 0, 30, 60)


def test_crop_to_alpha_does_not_touch_its_input():
    image = product()
    before = image.tobytes()
    crop_to_alpha(image)
    assert image.tobytes() == before
    assert image.size == (100, 80)


def test_crop_to_alpha_rejects_empty_images_and_negative_margins():
    with pytest.raises(ValueError, match="no opaque pixels"):
        crop_to_alpha(Image.new("RGBA", (10, 10)))
    with pytest.raises(ValueError, match="margin"):
        crop_to_alpha(product(), margin=-0.1)


@pytest.mark.parametrize(
    ("size", "box", "expected"),
    [
        ((4000, 3000), (1600, 1600), (1600, 1200)),
        ((3000, 4000), (1600, 1600), (1200, 1600)),
        ((1000, 500), (1600, 1600), (1000, 500)),
        ((5000, 10), (100, 100), (100, 1)),
        ((1601, 1601), (1600, 1600), (1600, 1600)),
    ],
)
def test_contain_size(size, box, expected):
    assert contain_size(size, box) == expected


def test_contain_size_rejects_empty_sizes():
    with pytest.raises(ValueError):
        contain_size((0, 10), (10, 10))


def test_fit_downscales_keeping_the_aspect_ratio():
    image = Image.new("RGB", (1000, 400), (10, 20, 30))
    fitted = fit(image, (250, 250))
    assert fitted.size == (250, 100)
    assert fitted.getpixel((125, 50)) == (10, 20, 30)


def test_fit_never_upscales_and_returns_a_new_image():
    image = product()
    fitted = fit(image, (1000, 1000))
    assert fitted.size == image.size
    assert fitted is not image
    assert fitted.tobytes() == image.tobytes()


def test_fit_does_not_bleed_transparent_colour():
    # Fully transparent pixels hold pure green; premultiplied resampling must not mix it in.
    image = Image.new("RGBA", (400, 400), (0, 255, 0, 0))
    image.paste((255, 0, 0, 255), (100, 100, 300, 300))
    fitted = fit(image, (100, 100))
    r, g, _, a = fitted.getpixel((25, 50))  # on the soft edge
    assert 0 < a < 255
    assert g <= 2
    assert r >= 250

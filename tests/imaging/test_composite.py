"""imaging.composite: placement geometry, shadow and painting onto backgrounds."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageFilter

from imaging.composite import Placement, Shadow, composite, place
from imaging.geometry import alpha_bbox

CANVAS = 400


def bottle(size=(300, 500), box=(60, 40, 220, 460)) -> Image.Image:
    """An opaque product with a soft edge, off-centre on a transparent cut-out."""
    image = Image.new("RGBA", size, (0, 255, 0, 0))
    image.paste((180, 40, 40, 255), box)
    alpha = image.getchannel("A").filter(ImageFilter.GaussianBlur(1.5))
    image.putalpha(alpha)
    return image


def placed_box(placement: Placement) -> tuple[int, int, int, int]:
    box = alpha_bbox(placement.cutout)
    assert box is not None
    x, y = placement.position
    return box[0] + x, box[1] + y, box[2] + x, box[3] + y


def test_place_fills_the_canvas_share_and_centres():
    placement = place(bottle(), CANVAS, fill=0.85, shadow=None)
    left, top, right, bottom = placed_box(placement)
    assert abs((bottom - top) - 0.85 * CANVAS) <= 1
    assert abs((left + right) / 2 - CANVAS / 2) <= 1
    assert abs((top + bottom) / 2 - CANVAS / 2) <= 1
    assert all(
        abs(a - b) <= 1 for a, b in zip(placed_box(placement), placement.product_box, strict=True)
    )
    assert placement.canvas == CANVAS
    assert placement.cutout.mode == "RGBA"


def test_place_limits_the_upscale():
    small = Image.new("RGBA", (50, 40), (0, 0, 0, 0))
    small.paste((10, 10, 10, 255), (5, 5, 45, 25))  # 40 px wide
    placement = place(small, CANVAS, max_upscale=2.0, shadow=None)
    left, _, right, _ = placed_box(placement)
    assert abs((right - left) - 80) <= 1


def test_place_accepts_an_opaque_rgb_product():
    placement = place(Image.new("RGB", (100, 50), (9, 9, 9)), CANVAS, fill=0.5, shadow=None)
    assert placement.product_box == (100, 150, 300, 250)


def test_shadow_falls_towards_the_offset_and_darkens():
    shadow = Shadow(blur=20.0, opacity=0.5, offset=(30.0, 30.0), reference_size=CANVAS)
    placement = place(bottle(), CANVAS, fill=0.5, shadow=shadow)
    white = Image.new("RGB", (CANVAS, CANVAS), (255, 255, 255))
    pixels = np.asarray(composite(white, placement)).astype(np.int64)[..., 0]
    left, top, right, bottom = placement.product_box
    below_right = pixels[bottom + 2 : bottom + 20, right + 2 : right + 20].mean()
    above_left = pixels[top - 20 : top - 2, left - 20 : left - 2].mean()
    assert below_right < 235
    assert above_left > below_right + 15
    assert pixels[0, 0] == 255 and pixels[-1, -1] >= 254  # far corners untouched


def test_shadow_mask_matches_a_full_resolution_gaussian():
    shadow = Shadow(blur=25.0, opacity=0.3, offset=(0.0, 0.0), reference_size=CANVAS)
    placement = place(bottle(), CANVAS, fill=0.7, shadow=shadow)
    assert placement.shadow is not None
    exact = Image.new("L", (CANVAS, CANVAS), 0)
    exact.paste(placement.cutout.getchannel("A"), placement.position)
    exact = exact.filter(ImageFilter.GaussianBlur(25.0)).point(lambda v: round(v * 0.3))
    fast = Image.new("L", (CANVAS, CANVAS), 0)
    fast.paste(placement.shadow, placement.shadow_position)
    difference = np.abs(np.asarray(fast).astype(int) - np.asarray(exact).astype(int))
    assert difference.max() <= 3
    assert difference.mean() < 0.5


def test_shadow_scales_with_the_canvas():
    shadow = Shadow(blur=20.0, opacity=0.3, offset=(5.0, 5.0), reference_size=200)
    small = place(bottle(), 200, shadow=shadow)
    large = place(bottle(), 400, shadow=shadow)
    assert small.shadow is not None and large.shadow is not None
    offset_small = np.subtract(small.shadow_position, small.position)
    offset_large = np.subtract(large.shadow_position, large.position)
    assert np.allclose(offset_large, 2 * offset_small, atol=3)


def test_place_clips_to_the_canvas():
    placement = place(bottle(), CANVAS, fill=1.0)  # the soft edge spills over
    assert placement.position[1] == 0
    assert placement.cutout.height == CANVAS
    assert placement.shadow is not None
    x, y = placement.shadow_position
    assert x >= 0 and y >= 0
    assert x + placement.shadow.width <= CANVAS and y + placement.shadow.height <= CANVAS
    composite(Image.new("RGB", (CANVAS, CANVAS)), placement)
    gone = place(bottle(), CANVAS, shadow=Shadow(offset=(5000.0, 0.0)))
    assert gone.shadow is None


def test_composite_paints_the_product_over_the_background():
    placement = place(bottle(), CANVAS, shadow=None)
    background = Image.new("RGB", (CANVAS, CANVAS), (20, 60, 200))
    result = composite(background, placement)
    assert result.mode == "RGB"
    assert result.size == (CANVAS, CANVAS)
    assert result.getpixel((CANVAS // 2, CANVAS // 2)) == (180, 40, 40)
    assert result.getpixel((5, 5)) == (20, 60, 200)


def test_resampling_does_not_bleed_the_colour_of_transparent_pixels():
    cutout = Image.new("RGBA", (300, 500), (0, 255, 0, 0))  # invisible green
    cutout.paste((180, 40, 40, 255), (60, 40, 220, 460))  # hard edges
    placement = place(cutout, CANVAS, fill=0.77, shadow=None)
    background = Image.new("RGB", (CANVAS, CANVAS), (20, 60, 200))
    row = composite(background, placement).crop((0, CANVAS // 2, CANVAS, CANVAS // 2 + 1))
    assert np.asarray(row)[..., 1].max() <= 60


def test_one_placement_serves_several_backgrounds_without_mutation():
    cutout = bottle()
    cutout_before = cutout.tobytes()
    placement = place(cutout, CANVAS)
    backgrounds = [Image.new("RGB", (CANVAS, CANVAS), c) for c in ((250, 250, 250), (30, 30, 30))]
    before = [b.tobytes() for b in backgrounds]
    results = [composite(b, placement) for b in backgrounds]
    assert [b.tobytes() for b in backgrounds] == before
    assert cutout.tobytes() == cutout_before
    centre = (CANVAS // 2, CANVAS // 2)
    assert results[0].getpixel(centre) == results[1].getpixel(centre) == (180, 40, 40)


def test_composite_rejects_a_background_of_another_size():
    placement = place(bottle(), CANVAS)
    with pytest.raises(ValueError, match="400×400"):
        composite(Image.new("RGB", (CANVAS + 1, CANVAS)), placement)


@pytest.mark.parametrize(
    ("cutout", "kwargs"),
    [
        (Image.new("RGBA", (50, 50)), {}),
        (Image.new("L", (50, 50), 255), {}),
        (bottle(), {"fill": 0.0}),
        (bottle(), {"fill": 1.2}),
        (bottle(), {"max_upscale": 0.0}),
    ],
)
def test_place_rejects_bad_arguments(cutout, kwargs):
    with pytest.raises(ValueError):
        place(cutout, CANVAS, **kwargs)


@pytest.mark.parametrize("kwargs", [{"blur": -1.0}, {"opacity": 1.5}, {"reference_size": 0}])
def test_shadow_validates(kwargs):
    with pytest.raises(ValueError):
        Shadow(**kwargs)

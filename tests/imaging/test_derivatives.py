"""imaging.derivatives: specs, one-file render, and the parallel resize-chain render."""

from __future__ import annotations

import io

import pytest
from PIL import Image, ImageCms, ImageDraw

from imaging.codec import decode, sniff
from imaging.derivatives import (
    DEFAULT_SPECS,
    SIZES,
    DerivativeSpec,
    Rendered,
    render,
    render_all,
)

THUMBS = (DerivativeSpec("thumb", 200, "jpeg"), DerivativeSpec("thumb", 200, "avif"))


@pytest.fixture(scope="module")
def master() -> Image.Image:
    """A 1200 px master with some structure: a gradient and a 'product' block."""
    image = Image.linear_gradient("L").resize((1200, 1200)).convert("RGB")
    draw = ImageDraw.Draw(image)
    draw.rectangle((400, 200, 800, 1000), fill=(180, 40, 40))
    draw.ellipse((500, 300, 700, 500), fill=(240, 220, 90))
    image.info["icc_profile"] = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    return image


def test_default_specs_are_three_sizes_by_three_formats():
    assert SIZES == {"hero": 1200, "pdp": 800, "thumb": 200}
    assert [(s.name, s.size, s.fmt) for s in DEFAULT_SPECS] == [
        (name, size, fmt) for name, size in SIZES.items() for fmt in ("jpeg", "webp", "avif")
    ]
    assert [s.extension for s in DEFAULT_SPECS[:3]] == ["jpg", "webp", "avif"]
    assert [s.content_type for s in DEFAULT_SPECS[:3]] == ["image/jpeg", "image/webp", "image/avif"]


@pytest.mark.parametrize(
    "args", [("", 200, "jpeg"), ("thumb", 0, "jpeg"), ("thumb", 200, "png"), ("t", 2, "avif", 101)]
)
def test_spec_validates(args):
    with pytest.raises(ValueError):
        DerivativeSpec(*args)


def test_render_all_makes_every_file(master):
    before = master.tobytes()
    outputs = render_all(master)
    assert [o.spec for o in outputs] == list(DEFAULT_SPECS)
    for output in outputs:
        assert isinstance(output, Rendered)
        assert sniff(output.data) == output.spec.fmt
        assert (output.width, output.height) == (output.spec.size, output.spec.size)
        reread = Image.open(io.BytesIO(output.data))
        assert reread.size == (output.spec.size, output.spec.size)
        assert "icc_profile" not in reread.info
        assert "exif" not in reread.info
    assert master.tobytes() == before
    hero = decode(outputs[0].data)
    assert (
        max(abs(a - b) for a, b in zip(hero.getpixel((600, 900)), (180, 40, 40), strict=True)) <= 6
    )


def test_render_all_is_the_same_on_one_thread(master):
    parallel = render_all(master, THUMBS, workers=2)
    serial = render_all(master, THUMBS, workers=1)
    assert [o.data for o in parallel] == [o.data for o in serial]


def test_render_all_keeps_spec_order_and_quality(master):
    specs = (
        DerivativeSpec("thumb", 200, "webp", quality=20),
        DerivativeSpec("pdp", 800, "jpeg"),
        DerivativeSpec("thumb", 200, "webp", quality=95),
    )
    outputs = render_all(master, specs)
    assert [o.spec for o in outputs] == list(specs)
    assert len(outputs[0].data) < len(outputs[2].data)


def test_render_all_of_a_wide_master_keeps_its_aspect_ratio():
    outputs = render_all(Image.new("RGB", (1600, 1000), (9, 9, 9)), (THUMBS[0],))
    assert (outputs[0].width, outputs[0].height) == (200, 125)


def test_render_all_never_upscales():
    small = Image.new("RGB", (1024, 1024))
    with pytest.raises(ValueError, match=r"1024×1024 px, smaller than the 1200 px 'hero'"):
        render_all(small)
    with pytest.raises(ValueError, match="never upscaled"):
        render(small, DerivativeSpec("huge", 2000, "jpeg"))


@pytest.mark.parametrize(
    ("image", "kwargs"),
    [
        (Image.new("RGBA", (1200, 1200)), {}),
        (Image.new("RGB", (1200, 1200)), {"specs": ()}),
        (Image.new("RGB", (1200, 1200)), {"workers": 0}),
    ],
)
def test_render_all_rejects_bad_arguments(image, kwargs):
    with pytest.raises(ValueError):
        render_all(image, **kwargs)


def test_render_one(master):
    output = render(master, DerivativeSpec("pdp", 800, "webp"))
    assert (output.width, output.height) == (800, 800)
    assert sniff(output.data) == "webp"

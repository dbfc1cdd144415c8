"""imaging.codec: sniffing, decoding to sRGB RGB/RGBA, limits, encoding."""

from __future__ import annotations

import io
import struct
import subprocess
import sys
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageCms, ImageFile

from imaging.codec import (
    CONTENT_TYPES,
    EXTENSIONS,
    ImageInfo,
    ImageTooLarge,
    ImageTooSmall,
    InvalidImage,
    UnreadableImage,
    decode,
    encode,
    probe,
    sniff,
)
from tests.helpers.icc import ADOBE_RGB, LINEAR_GREY, adobe_to_srgb

PIL_NAMES = {"jpeg": "JPEG", "png": "PNG", "webp": "WEBP", "avif": "AVIF", "tiff": "TIFF"}
PIL_NAMES["gif"] = "GIF"


def save(image: Image.Image, fmt: str, **options) -> bytes:
    out = io.BytesIO()
    image.save(out, PIL_NAMES.get(fmt, fmt), **options)
    return out.getvalue()


def noisy(size: tuple[int, int] = (300, 300), seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))


def assert_close(actual, expected, tolerance: int) -> None:
    assert len(actual) == len(expected)
    assert all(abs(a - e) <= tolerance for a, e in zip(actual, expected, strict=True)), (
        actual,
        expected,
    )


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that only claims a size: 1-bit IHDR and an empty IDAT, a few dozen bytes."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b""))
        + chunk(b"IEND", b"")
    )


# --- sniff / probe ----------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["jpeg", "png", "webp", "avif", "tiff", "gif"])
def test_sniff_recognises_every_accepted_format(fmt):
    data = save(Image.new("RGB", (16, 16), (10, 200, 30)), fmt)
    assert sniff(data) == fmt


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"hello world, not an image at all",
        b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic",  # HEIC shares the container
        b"RIFF\x00\x00\x00\x00WAVEfmt ",
        b"%PDF-1.7\n",
    ],
)
def test_sniff_rejects_other_bytes(data):
    assert sniff(data) is None


def test_sniff_bigtiff_and_avif_compatible_brand():
    assert sniff(b"II+\x00\x08\x00\x00\x00") == "tiff"
    assert sniff(b"\x00\x00\x00\x1cftypmif1\x00\x00\x00\x00mif1avifmiaf") == "avif"


def test_extensions_and_content_types():
    assert EXTENSIONS == {
        "jpeg": "jpg",
        "png": "png",
        "webp": "webp",
        "avif": "avif",
        "tiff": "tif",
        "gif": "gif",
    }
    assert CONTENT_TYPES == {
        "jpeg": "image/jpeg",
        "png": "image/png",
        "webp": "image/webp",
        "avif": "image/avif",
        "tiff": "image/tiff",
        "gif": "image/gif",
    }


def test_probe_reads_the_header_only():
    data = save(noisy((320, 240)), "jpeg")
    assert probe(data) == ImageInfo("jpeg", 320, 240)
    # A truncated file still has its header: probe works where decode cannot.
    assert probe(data[: len(data) // 2]) == ImageInfo("jpeg", 320, 240)


def test_probe_reports_the_displayed_size():
    exif = Image.Exif()
    exif[0x0112] = 6
    data = save(Image.new("RGB", (320, 240)), "jpeg", exif=exif)
    assert probe(data) == ImageInfo("jpeg", 240, 320)


def test_probe_rejects_non_images():
    with pytest.raises(UnreadableImage):
        probe(b"GIF89a but not really")


# --- decode: colour ---------------------------------------------------------------------------


def test_decode_cmyk_jpeg_to_rgb():
    data = save(Image.new("CMYK", (300, 300), (0, 255, 255, 0)), "jpeg", quality=95)
    image = decode(data)
    assert image.mode == "RGB"
    assert_close(image.getpixel((150, 150)), (255, 0, 0), 3)


def test_decode_converts_an_adobe_rgb_jpeg_to_srgb():
    colour = (40, 170, 90)
    source = Image.new("RGB", (300, 300), colour)
    tagged = decode(save(source, "jpeg", quality=95, icc_profile=ADOBE_RGB))
    untagged = decode(save(source, "jpeg", quality=95))
    expected = adobe_to_srgb(colour)
    assert expected != colour  # the test colour is one the conversion moves
    assert_close(tagged.getpixel((150, 150)), expected, 3)
    assert_close(untagged.getpixel((150, 150)), colour, 2)
    assert tagged.info == {}


def test_decode_converts_a_grey_profile():
    image = decode(save(Image.new("L", (300, 300), 128), "png", icc_profile=LINEAR_GREY))
    # Linear 0.5 is sRGB-encoded ~188.
    assert image.mode == "RGB"
    assert_close(image.getpixel((5, 5)), (188, 188, 188), 2)


def test_decode_keeps_srgb_tagged_pixels_and_ignores_a_broken_profile():
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    source = Image.new("RGB", (300, 300), (12, 34, 56))
    for profile in (srgb, b"garbage, not a profile"):
        assert decode(save(source, "png", icc_profile=profile)).getpixel((1, 1)) == (12, 34, 56)


def test_decode_scales_16_bit_grey():
    values = np.array([[0, 257 * 128, 65535] * 100] * 300, dtype=np.uint16)
    source = Image.fromarray(values)
    assert source.mode == "I;16"
    image = decode(save(source, "png"))
    assert image.mode == "RGB"
    assert [image.getpixel((x, 0)) for x in range(3)] == [(0, 0, 0), (128,) * 3, (255,) * 3]


def test_decode_palette_with_transparency_gives_rgba():
    source = Image.new("P", (300, 300), 1)
    source.putpalette([0, 0, 0, 200, 10, 20] + [0] * 762)
    source.paste(0, (0, 0, 100, 100))
    image = decode(save(source, "png", transparency=0))
    assert image.mode == "RGBA"
    assert image.getpixel((10, 10))[3] == 0
    assert image.getpixel((200, 200)) == (200, 10, 20, 255)


def test_decode_keeps_real_alpha_and_drops_opaque_alpha():
    source = Image.new("RGBA", (300, 300), (10, 20, 30, 255))
    source.paste((40, 50, 60, 128), (0, 0, 10, 10))
    image = decode(save(source, "png"))
    assert image.mode == "RGBA"
    assert image.getpixel((5, 5)) == (40, 50, 60, 128)
    assert image.getpixel((100, 100)) == (10, 20, 30, 255)
    opaque = decode(save(Image.new("RGBA", (300, 300), (1, 2, 3, 255)), "png"))
    assert opaque.mode == "RGB"


def test_decode_grey_and_bilevel_give_rgb():
    grey = decode(save(Image.new("L", (300, 300), 77), "jpeg", quality=95))
    assert grey.mode == "RGB"
    assert_close(grey.getpixel((5, 5)), (77, 77, 77), 1)
    la = decode(save(Image.new("LA", (300, 300), (90, 100)), "png"))
    assert la.mode == "RGBA"
    assert la.getpixel((5, 5)) == (90, 90, 90, 100)
    bilevel = decode(save(Image.new("1", (300, 300), 1), "png"))
    assert bilevel.mode == "RGB"
    assert bilevel.getpixel((5, 5)) == (255, 255, 255)


# --- decode: orientation, formats, frames -----------------------------------------------------


def test_decode_applies_exif_orientation():
    source = Image.new("RGB", (300, 200), (255, 255, 255))
    source.paste((255, 0, 0), (0, 0, 30, 30))  # marker in the stored top-left corner
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    image = decode(save(source, "jpeg", quality=95, exif=exif))
    assert image.size == (200, 300)
    assert_close(image.getpixel((200 - 15, 15)), (255, 0, 0), 8)  # now top-right
    assert_close(image.getpixel((15, 15)), (255, 255, 255), 8)
    assert "exif" not in image.info


@pytest.mark.parametrize("fmt", ["webp", "avif", "tiff", "png", "gif"])
def test_decode_other_formats(fmt):
    options = {"quality": 95} if fmt in ("webp", "avif") else {}
    image = decode(save(Image.new("RGB", (300, 200), (30, 120, 220)), fmt, **options))
    assert image.mode == "RGB"
    assert image.size == (300, 200)
    assert_close(image.getpixel((150, 100)), (30, 120, 220), 6)


@pytest.mark.parametrize("fmt", ["gif", "webp"])
def test_decode_takes_the_first_frame_of_an_animation(fmt):
    frames = [Image.new("RGB", (250, 250), c) for c in ((255, 0, 0), (0, 0, 255))]
    data = save(frames[0], fmt, save_all=True, append_images=frames[1:], duration=100)
    assert Image.open(io.BytesIO(data)).n_frames == 2
    assert_close(decode(data).getpixel((10, 10)), (255, 0, 0), 6)


def test_decode_accepts_a_long_thin_image():
    image = decode(save(Image.new("RGB", (4000, 160), (5, 6, 7)), "png"))
    assert image.size == (4000, 160)


def test_decode_strips_metadata_and_returns_a_plain_loaded_image():
    exif = Image.Exif()
    exif[0x010F] = "Camera maker"
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    image = decode(save(noisy(), "jpeg", exif=exif, icc_profile=srgb))
    assert image.info == {}
    assert type(image) is Image.Image
    assert image.tobytes()  # usable after the source file is closed


# --- decode: refusals -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [b"", b"not an image", b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, b"\xff\xd8\xff\xe0garbage"],
)
def test_decode_rejects_unreadable_bytes(data):
    with pytest.raises(UnreadableImage):
        decode(data)


@pytest.mark.parametrize("fmt", ["jpeg", "png"])
def test_decode_rejects_truncated_files(fmt):
    data = save(noisy(), fmt)
    with pytest.raises(UnreadableImage, match="cannot decode"):
        decode(data[: len(data) * 2 // 3])
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


@pytest.fixture
def no_pixel_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any pixel decode fails the test: a refusal must come from the header alone."""

    def refuse(self: ImageFile.ImageFile) -> None:
        raise AssertionError(f"pixels of a {self.size} image were decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", refuse)


def test_decode_refuses_a_decompression_bomb_from_its_header(no_pixel_decoding: None) -> None:
    bomb = png_header_only(60_000, 60_000)
    assert len(bomb) < 100
    with pytest.raises(ImageTooLarge):
        decode(bomb)


def test_decode_refuses_more_than_max_pixels_before_decoding(no_pixel_decoding: None) -> None:
    data = png_header_only(8000, 8000)  # 64 MP, under Pillow's own bomb limits
    with pytest.raises(ImageTooLarge, match="8000×8000"):
        decode(data)
    with pytest.raises(ImageTooLarge):
        decode(save(Image.new("RGB", (300, 300)), "png"), max_pixels=300 * 299)


def test_decode_refuses_too_small_images():
    with pytest.raises(ImageTooSmall) as caught:
        decode(save(Image.new("RGB", (150, 120)), "png"))
    assert str(caught.value) == "image is 150×120 px; the longer side must be at least 200 px"
    assert isinstance(caught.value, InvalidImage)
    assert isinstance(caught.value, ValueError)


def test_decode_rejects_bad_limits():
    with pytest.raises(ValueError):
        decode(b"x", max_pixels=0)


# --- encode -----------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["jpeg", "webp", "avif", "png"])
def test_encode_round_trips(fmt):
    source = Image.new("RGB", (240, 240), (200, 100, 50))
    data = encode(source, fmt)
    assert sniff(data) == fmt
    back = decode(data)
    assert back.size == (240, 240)
    assert_close(back.getpixel((120, 120)), (200, 100, 50), 0 if fmt == "png" else 6)


def test_encode_png_keeps_alpha_and_grey_masks_exactly():
    source = Image.new("RGBA", (50, 50), (1, 2, 3, 0))
    source.paste((9, 8, 7, 200), (10, 10, 20, 20))
    assert Image.open(io.BytesIO(encode(source, "png"))).tobytes() == source.tobytes()
    mask = Image.new("L", (50, 50), 128)
    reread = Image.open(io.BytesIO(encode(mask, "png")))
    assert reread.mode == "L"
    assert reread.tobytes() == mask.tobytes()


@pytest.mark.parametrize("mode", ["L", "RGB", "RGBA"])
def test_encode_png_is_lossless_on_noise(mode):
    values = np.random.default_rng(3).integers(0, 256, (37, 53, len(mode)), dtype=np.uint8)
    source = Image.fromarray(values.squeeze(), mode)
    for level in (0, 1, 9):
        reread = Image.open(io.BytesIO(encode(source, "png", png_level=level)))
        assert reread.mode == mode
        assert reread.tobytes() == source.tobytes()


def test_encode_writes_no_metadata_and_leaves_the_input_alone():
    source = noisy((64, 64))
    source.info.update(
        icc_profile=ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    )
    source.info["exif"] = b"Exif\x00\x00MM\x00*\x00\x00\x00\x08\x00\x00"
    before = dict(source.info)
    for fmt in ("jpeg", "webp", "avif", "png"):
        reread = Image.open(io.BytesIO(encode(source, fmt)))
        assert "icc_profile" not in reread.info, fmt
        assert "exif" not in reread.info, fmt
    assert source.info == before
    assert not hasattr(source, "encoderinfo")


def test_concurrent_encodes_of_one_image_match_serial_ones():
    source = noisy((96, 96))
    jobs = [("jpeg", 90), ("webp", 60), ("avif", 40), ("png", None)] * 4
    serial = [encode(source, fmt, quality=q) for fmt, q in jobs]
    with ThreadPoolExecutor(max_workers=8) as pool:
        parallel = list(pool.map(lambda job: encode(source, job[0], quality=job[1]), jobs))
    assert parallel == serial


def test_encode_jpeg_is_progressive_by_default():
    source = noisy((64, 64))
    assert Image.open(io.BytesIO(encode(source, "jpeg"))).info.get("progressive") == 1
    baseline = Image.open(io.BytesIO(encode(source, "jpeg", progressive=False)))
    assert "progressive" not in baseline.info


def test_encode_quality_changes_size():
    source = noisy((128, 128))
    for fmt in ("jpeg", "webp", "avif"):
        assert len(encode(source, fmt, quality=20)) < len(encode(source, fmt, quality=90)), fmt


@pytest.mark.parametrize(
    ("mode", "fmt", "options"),
    [
        ("RGBA", "jpeg", {}),
        ("CMYK", "png", {}),
        ("RGB", "bmp", {}),
        ("RGB", "jpeg", {"quality": 101}),
        ("RGB", "png", {"quality": 80}),
        ("RGB", "webp", {"webp_method": 7}),
        ("RGB", "avif", {"avif_speed": 11}),
        ("RGB", "png", {"png_level": 10}),
    ],
)
def test_encode_rejects_bad_arguments(mode, fmt, options):
    with pytest.raises(ValueError):
        encode(Image.new(mode, (8, 8)), fmt, **options)


@pytest.mark.slow
def test_decode_of_a_48_mp_jpeg_stays_well_under_a_gigabyte(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6  # the worst case: a rotated copy on top of the decoded pixels
    source = Image.new("RGB", (8000, 6000), (120, 140, 160))  # flat: quick to encode
    path = tmp_path / "big.jpg"
    source.save(path, quality=85, exif=exif)
    del source
    script = (
        "import sys; from pathlib import Path; from imaging.codec import decode; "
        "image = decode(Path(sys.argv[1]).read_bytes()); assert image.size == (6000, 8000); "
        # VmHWM, not ru_maxrss: the latter survives exec and would count the parent
        # (a large pytest worker) at fork time.
        "print(next(int(l.split()[1]) for l in open('/proc/self/status') if l.startswith('VmHWM')) // 1024)"
    )
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-c", script, str(path)],
        capture_output=True,
        text=True,
        check=True,
        cwd=root,
    )
    assert int(done.stdout) < 700, done.stdout  # MB, whole process

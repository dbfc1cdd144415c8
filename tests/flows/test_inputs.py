"""`packshot process` on every kind of input: processed, rejected (exit 2), retried then failed."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from deployments.cli import app
from tests.helpers.http_server import Reply, Script, serve
from tests.helpers.images import bomb_png, encoded, jpeg_bytes, product_photo, truncated_jpeg

pytestmark = pytest.mark.xdist_group("prefect")
runner = CliRunner()


def _run(*args: str) -> tuple[int, dict]:
    result = runner.invoke(app, ["process", *args, "--json"], catch_exceptions=False)
    text = result.stdout
    try:
        doc = json.loads(text[text.index("{") :]) if "{" in text else {}
    except json.JSONDecodeError:
        doc = {}
    return result.exit_code, doc | {"_out": result.output}


def _write(tmp_path: Path, name: str, data: bytes) -> str:
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


def _adobe_rgb_profile() -> bytes:
    """An Adobe RGB (1998) ICC profile built byte by byte (primaries, gamma 563/256)."""
    from tests.helpers.icc import ADOBE_RGB

    return ADOBE_RGB


def _exif_rotated() -> bytes:
    upright = product_photo((300, 500))
    stored = upright.transpose(Image.Transpose.ROTATE_90)  # as a camera lying on its side saves it
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    return jpeg_bytes(stored, exif=exif.tobytes())


def _animated_gif() -> bytes:
    frames = [product_photo((320, 240)).convert("P"), Image.new("P", (320, 240), 3)]
    return encoded(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)


def _palette_png_with_transparency() -> bytes:
    image = product_photo((320, 240)).convert("P", palette=Image.Palette.ADAPTIVE, colors=64)
    corner = image.getpixel((0, 0))
    return encoded(image, "PNG", transparency=corner)


def _transparent_png() -> bytes:
    rgba = Image.new("RGBA", (400, 300), (0, 0, 0, 0))
    rgba.paste(product_photo((200, 200)), (100, 50))
    return encoded(rgba, "PNG")


def _sixteen_bit_png() -> bytes:
    grey = product_photo((320, 240)).convert("L")
    wide = Image.frombytes("I;16", grey.size, bytes(b for v in grey.tobytes() for b in (v, v)))
    return encoded(wide, "PNG")


PROCESSED = {
    "cmyk.jpg": lambda: jpeg_bytes(product_photo().convert("CMYK")),
    "sixteen_bit.png": _sixteen_bit_png,
    "palette_transparent.png": _palette_png_with_transparency,
    "transparent.png": _transparent_png,
    "exif_rotated.jpg": _exif_rotated,
    "greyscale.jpg": lambda: jpeg_bytes(product_photo().convert("L")),
    "animated.gif": _animated_gif,
    "photo.webp": lambda: encoded(product_photo(), "WEBP", quality=90),
    "photo.avif": lambda: encoded(product_photo(), "AVIF", quality=80),
    "photo.tif": lambda: encoded(product_photo(), "TIFF"),
    "panorama.jpg": lambda: jpeg_bytes(product_photo((4000, 160))),
    "tagged.jpg": lambda: jpeg_bytes(product_photo(), icc_profile=_adobe_rgb_profile()),
}


@pytest.mark.parametrize("name", sorted(PROCESSED))
def test_inputs_are_processed(name: str, tmp_path: Path, packshot_env: Path) -> None:
    code, doc = _run(_write(tmp_path, name, PROCESSED[name]()), "--sku", "IN-1")
    assert code == 0, doc["_out"]
    assert doc["status"] == "DONE" and doc["assets"] == 26
    mask = Image.open(packshot_env / "store" / f"masks/IN-1/{doc['sha256']}.png")
    assert mask.mode == "L"
    if name == "exif_rotated.jpg":
        assert mask.size == (300, 500)  # upright: the orientation tag was applied


REJECTED = {
    "not_an_image.jpg": (lambda: b"this is plain text, not a photo", "not an image"),
    "empty.jpg": (lambda: b"", "empty|not an image"),
    "truncated.jpg": (truncated_jpeg, "unreadable|truncated"),
    "bomb.png": (bomb_png, "pixels"),
    "tiny.jpg": (lambda: jpeg_bytes(product_photo((150, 120))), "at least 200"),
}


@pytest.mark.parametrize("name", sorted(REJECTED))
def test_bad_files_are_rejected_with_exit_2(name: str, tmp_path: Path, packshot_env: Path) -> None:
    make, message = REJECTED[name]
    code, doc = _run(_write(tmp_path, name, make()), "--sku", "BAD-1")
    assert code == 2, doc["_out"]
    assert doc.get("status") == "FAILED"
    import re

    assert re.search(message, doc.get("error") or "", re.I), doc
    assert not list((packshot_env / "store").glob("manifests/**/*.json"))


def test_sha256_mismatch_is_rejected(tmp_path: Path) -> None:
    path = _write(tmp_path, "a.jpg", jpeg_bytes(product_photo()))
    code, doc = _run(path, "--sku", "BAD-2", "--sha256", "0" * 64)
    assert code == 2 and "sha256 mismatch" in doc["_out"]


def test_bad_sku_and_theme_are_usage_errors(tmp_path: Path) -> None:
    path = _write(tmp_path, "a.jpg", jpeg_bytes(product_photo()))
    code, doc = _run(path, "--sku", "has space")
    assert code == 2 and "sku" in doc["_out"]
    code, doc = _run(path, "--sku", "..")
    assert code == 2 and "other than . or .." in doc["_out"]
    code, doc = _run(path, "--sku", "OK", "--theme", "nope")
    assert code == 2 and "unknown theme" in doc["_out"]


@pytest.mark.parametrize("url", ["ftp://example.com/a.jpg", "gopher://x/a.jpg"])
def test_non_http_urls_are_rejected(url: str) -> None:
    code, doc = _run(url, "--sku", "BAD-3")
    assert code == 2 and "http" in doc["_out"]


def test_private_address_refused_unless_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    script = Script()
    data = jpeg_bytes(product_photo())
    script.add("/a.jpg", Reply(200, data))
    monkeypatch.setenv("PACKSHOT_ALLOW_PRIVATE_SOURCES", "false")
    from core.settings import get_settings

    get_settings.cache_clear()
    with serve(script) as base:
        code, doc = _run(
            f"{base}/a.jpg", "--sku", "PRIV", "--sha256", hashlib.sha256(data).hexdigest()
        )
    assert code == 2 and "private" in (doc.get("error") or "")
    assert script.hits.get("/a.jpg", 0) == 0


def test_download_too_large_is_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    data = jpeg_bytes(product_photo())
    monkeypatch.setenv("PACKSHOT_MAX_SOURCE_BYTES", str(len(data) // 2))
    from core.settings import get_settings

    get_settings.cache_clear()
    script = Script()
    script.add("/big.jpg", Reply(200, data))
    with serve(script) as base:
        code, doc = _run(
            f"{base}/big.jpg", "--sku", "BIG", "--sha256", hashlib.sha256(data).hexdigest()
        )
    assert code == 2 and "limit" in (doc.get("error") or "")


def test_timeouts_are_retried_then_fail_with_exit_1(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PACKSHOT_DOWNLOAD_READ_TIMEOUT", "0.3")
    monkeypatch.setenv("PACKSHOT_STEP_RETRIES", "2")
    from core.settings import get_settings

    get_settings.cache_clear()
    script = Script()
    script.add("/slow.jpg", Reply(200, b"x", delay=1.0))
    with serve(script) as base:
        code, doc = _run(f"{base}/slow.jpg", "--sku", "SLOW", "--sha256", "1" * 64)
    assert code == 1 and "timed out" in (doc.get("error") or "")
    assert script.hits["/slow.jpg"] == 3
    download = next(s for s in doc["steps"] if s["step"] == "download")
    assert download["attempts"] == 3 and download["state"] == "FAILED"


def test_a_source_too_slow_fails_once_with_exit_2(monkeypatch: pytest.MonkeyPatch) -> None:
    """A source dripping bytes is bad input: one attempt, ended by the download deadline."""
    monkeypatch.setenv("PACKSHOT_DOWNLOAD_DEADLINE_S", "0.5")
    monkeypatch.setenv("PACKSHOT_STEP_RETRIES", "2")
    from core.settings import get_settings

    get_settings.cache_clear()
    script = Script()
    script.add("/drip.jpg", Reply(200, b"x" * 1000, drip=0.02))
    with serve(script) as base:
        code, doc = _run(f"{base}/drip.jpg", "--sku", "DRIP", "--sha256", "1" * 64)
    assert code == 2 and "download exceeded 0.5 s" in (doc.get("error") or "")
    assert script.hits["/drip.jpg"] == 1
    download = next(s for s in doc["steps"] if s["step"] == "download")
    assert download["attempts"] == 1 and download["state"] == "FAILED"


def test_human_output_has_the_step_table(tmp_path: Path) -> None:
    path = _write(tmp_path, "a.jpg", jpeg_bytes(product_photo()))
    result = runner.invoke(app, ["process", path, "--sku", "HUMAN"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    for word in ("remove_background", "derivatives #2", "DONE", "manifest", "Prefect start-up"):
        assert word in result.output

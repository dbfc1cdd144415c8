"""Bytes in, pixels out and back: sniff, probe, decode to sRGB RGB/RGBA, encode.

Decoding normalises every accepted input (JPEG, PNG, WebP, AVIF, TIFF, GIF) to an 8-bit sRGB
image in mode ``RGB`` or ``RGBA`` with its orientation applied and its metadata dropped, so the
rest of the package only ever sees those two modes.
"""

from __future__ import annotations

import io
import struct
import zlib
from dataclasses import dataclass
from typing import Any

from PIL import (
    AvifImagePlugin,
    GifImagePlugin,
    Image,
    ImageFile,
    JpegImagePlugin,
    PngImagePlugin,
    TiffImagePlugin,
    UnidentifiedImageError,
    WebPImagePlugin,
)

from imaging._colour import to_srgb, to_working_mode
from imaging._png import encode_png

__all__ = [
    "CONTENT_TYPES",
    "EXTENSIONS",
    "ImageInfo",
    "ImageTooLarge",
    "ImageTooSmall",
    "InvalidImage",
    "UnreadableImage",
    "decode",
    "encode",
    "probe",
    "sniff",
]

# Importing the plugins we read and write registers them; otherwise Pillow imports all ~45 of
# its plugins (~30 ms of CPU per process) the first time it meets WebP, AVIF or TIFF.
_PLUGINS = (
    AvifImagePlugin,
    GifImagePlugin,
    JpegImagePlugin,
    PngImagePlugin,
    TiffImagePlugin,
    WebPImagePlugin,
)

EXTENSIONS: dict[str, str] = {
    "jpeg": "jpg",
    "png": "png",
    "webp": "webp",
    "avif": "avif",
    "tiff": "tif",
    "gif": "gif",
}
CONTENT_TYPES: dict[str, str] = {fmt: f"image/{fmt}" for fmt in EXTENSIONS}  # all IANA-registered

_ENCODABLE: dict[str, tuple[str, ...]] = {
    "jpeg": ("L", "RGB"),
    "webp": ("RGB", "RGBA"),
    "avif": ("RGB", "RGBA"),
    "png": ("L", "RGB", "RGBA"),
}
_DEFAULT_QUALITY = {"jpeg": 85, "webp": 82, "avif": 55}

# What Pillow raises on malformed or truncated files, besides its own decompression-bomb error.
_READ_ERRORS: tuple[type[Exception], ...] = (
    OSError,
    SyntaxError,
    ValueError,
    EOFError,
    IndexError,
    KeyError,
    TypeError,
    struct.error,
    zlib.error,
)

# EXIF orientation value -> the transpose that makes the image upright.
_ORIENTATION_TAG = 0x0112
_T = Image.Transpose
_TRANSPOSE = {
    2: _T.FLIP_LEFT_RIGHT,
    3: _T.ROTATE_180,
    4: _T.FLIP_TOP_BOTTOM,
    5: _T.TRANSPOSE,
    6: _T.ROTATE_270,
    7: _T.TRANSVERSE,
    8: _T.ROTATE_90,
}


class InvalidImage(ValueError):
    """The input cannot be used as a source image."""


class UnreadableImage(InvalidImage):
    """The bytes are not an image we read: empty, truncated, corrupt or an unsupported format."""


class ImageTooLarge(InvalidImage):
    """The image has more pixels than allowed (including decompression bombs)."""


class ImageTooSmall(InvalidImage):
    """The image is too small to make the derivatives from."""


@dataclass(frozen=True)
class ImageInfo:
    """What :func:`probe` reads from an image's header.

    Attributes:
        format: One of the keys of ``EXTENSIONS``.
        width: Width as displayed, i.e. after the EXIF orientation is applied.
        height: Height as displayed.
    """

    format: str
    width: int
    height: int


def sniff(data: bytes) -> str | None:
    """Name the image format from its magic bytes; never trusts names or headers sent along.

    Args:
        data: The file's bytes (the first 64 are enough).

    Returns:
        ``"jpeg"``, ``"png"``, ``"webp"``, ``"avif"``, ``"tiff"``, ``"gif"``, or ``None``.

    Example:
        >>> sniff(b"\\x89PNG\\r\\n\\x1a\\n" + bytes(8))
        'png'
    """
    head = bytes(data[:64])
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    # Classic TIFF (42) and BigTIFF (43), both byte orders.
    if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return "tiff"
    if _is_avif(head):
        return "avif"
    return None


def _is_avif(head: bytes) -> bool:
    # ISO-BMFF: the ftyp box lists a major brand and compatible brands; HEIC shares the container,
    # so only the AVIF brands count.
    if len(head) < 16 or head[4:8] != b"ftyp":
        return False
    box_end = min(int.from_bytes(head[:4], "big"), len(head))
    brands = {head[8:12]} | {head[i : i + 4] for i in range(16, box_end - 3, 4)}
    return bool(brands & {b"avif", b"avis"})


def probe(data: bytes) -> ImageInfo:
    """Read format and displayed size from the header without decoding pixels.

    Args:
        data: The file's bytes.

    Returns:
        The format and the width and height as displayed (EXIF orientation applied).

    Raises:
        UnreadableImage: The bytes are not an image in an accepted format.
        ImageTooLarge: Pillow refuses the header as a decompression bomb.

    Example:
        >>> info = probe(png_bytes)  # doctest: +SKIP
        >>> (info.format, info.width, info.height)  # doctest: +SKIP
        ('png', 640, 480)
    """
    fmt = _sniff_or_raise(data)
    with _open(data, fmt) as src:
        width, height = src.size
        # PNG keeps EXIF after the pixels unless it comes early; Pillow would load the
        # pixels to look for it there.
        header_exif = fmt != "png" or "exif" in src.info
        orientation = _orientation(src) if header_exif else 1
    if orientation in (5, 6, 7, 8):
        width, height = height, width
    return ImageInfo(fmt, width, height)


def decode(data: bytes, *, max_pixels: int = 50_000_000, min_side: int = 200) -> Image.Image:
    """Decode an image to 8-bit sRGB ``RGB`` (or ``RGBA`` when it has real transparency).

    EXIF orientation is applied, embedded ICC profiles are converted to sRGB, 16-bit and
    palette/grey/1-bit inputs are normalised, animations give their first frame, and the
    returned image carries no metadata. The pixel limit is checked from the header before any
    pixel is decoded, so a decompression bomb is refused without allocating it.

    Args:
        data: The file's bytes: JPEG, PNG, WebP, AVIF, TIFF or GIF.
        max_pixels: Largest accepted width × height.
        min_side: Smallest accepted length of the longer side, in pixels.

    Returns:
        A fully loaded image in mode ``RGB`` or ``RGBA``.

    Raises:
        ValueError: ``max_pixels`` or ``min_side`` is not positive.
        UnreadableImage: Empty, not an image, truncated, corrupt or an unsupported format.
        ImageTooLarge: More than ``max_pixels`` pixels.
        ImageTooSmall: The longer side is shorter than ``min_side``.

    Example:
        >>> image = decode(jpeg_bytes)  # doctest: +SKIP
        >>> image.mode, image.info  # doctest: +SKIP
        ('RGB', {})
    """
    if max_pixels < 1 or min_side < 1:
        raise ValueError(f"max_pixels and min_side must be positive, got {max_pixels}, {min_side}")
    fmt = _sniff_or_raise(data)
    with _open(data, fmt) as src:
        _check_size(src.size, max_pixels=max_pixels, min_side=min_side)
        try:
            src.load()
            orientation = _orientation(src)
            icc = src.info.get("icc_profile")
            # Wrap the decoded pixels in a plain Image (no copy) so nothing of the file object
            # (metadata, open frames) survives into the result.
            image = src._new(src.im)
        except Image.DecompressionBombError as exc:
            raise ImageTooLarge(f"image refused as a decompression bomb: {exc}") from exc
        except _READ_ERRORS as exc:
            raise UnreadableImage(f"cannot decode {fmt} image: {exc}") from exc
    image = _to_srgb(image, icc)
    if orientation in _TRANSPOSE:
        image = image.transpose(_TRANSPOSE[orientation])
    image.info = {}
    return image


def _sniff_or_raise(data: bytes) -> str:
    if not data:
        raise UnreadableImage("image data is empty")
    fmt = sniff(data)
    if fmt is None:
        accepted = ", ".join(f.upper() for f in EXTENSIONS)
        raise UnreadableImage(f"not an image in an accepted format ({accepted})")
    return fmt


def _open(data: bytes, fmt: str) -> ImageFile.ImageFile:
    # Image.open only parses the header; pixels are decoded by load(). Pillow's
    # DecompressionBombWarning (89-179 MP) is left alone: filtering warnings is process-global
    # state, and the default max_pixels refuses such images before they are decoded anyway.
    try:
        image = Image.open(io.BytesIO(data), formats=[fmt.upper()])
    except Image.DecompressionBombError as exc:
        raise ImageTooLarge(f"image refused as a decompression bomb: {exc}") from exc
    except UnidentifiedImageError as exc:  # its message only names the BytesIO object
        raise UnreadableImage(f"cannot read {fmt} image: corrupt or unsupported header") from exc
    except _READ_ERRORS as exc:
        raise UnreadableImage(f"cannot read {fmt} image: {exc}") from exc
    return image


def _check_size(size: tuple[int, int], *, max_pixels: int, min_side: int) -> None:
    width, height = size
    if width * height > max_pixels:
        raise ImageTooLarge(
            f"image is {width}×{height} px ({width * height / 1e6:.1f} MP); "
            f"the limit is {max_pixels / 1e6:g} MP"
        )
    if max(width, height) < min_side:
        raise ImageTooSmall(
            f"image is {width}×{height} px; the longer side must be at least {min_side} px"
        )


def _orientation(image: Image.Image) -> int:
    try:
        value = image.getexif().get(_ORIENTATION_TAG, 1)
    except _READ_ERRORS:
        # A broken EXIF block is common in the wild and must not cost the image.
        return 1
    return value if isinstance(value, int) else 1


def _to_srgb(image: Image.Image, icc: bytes | None) -> Image.Image:
    try:
        image = to_working_mode(image)
    except ValueError as exc:  # Pillow: "conversion from X to Y not supported"
        raise UnreadableImage(f"unsupported colour mode {image.mode}") from exc
    return to_srgb(image, icc)


def encode(
    image: Image.Image,
    fmt: str,
    *,
    quality: int | None = None,
    progressive: bool = True,
    webp_method: int = 4,
    avif_speed: int = 8,
    png_level: int = 1,
) -> bytes:
    """Encode an image to JPEG, WebP, AVIF or PNG bytes, without any metadata.

    The output carries no ICC profile: untagged pixels are read as sRGB by browsers, which is
    what :func:`decode` produces, and a profile would add ~0.5-3 KB to every file (a large share
    of a thumbnail).

    Args:
        image: ``RGB`` or ``RGBA`` (``L`` for JPEG and PNG). JPEG has no alpha: flatten first.
        fmt: ``"jpeg"``, ``"webp"``, ``"avif"`` or ``"png"``.
        quality: 0-100 for the lossy formats; defaults JPEG 85, WebP 82, AVIF 55. Not for PNG.
        progressive: JPEG only: progressive scans (optimal Huffman tables come with them).
        webp_method: WebP effort 0-6 (4 balances speed and size).
        avif_speed: AVIF encoder speed 0-10 (8 costs a third of Pillow's default 6).
        png_level: zlib level 0-9, with the RLE strategy and the Sub filter on every row
            (level 1 is about as small as 6 on photographic content and several times faster).

    Returns:
        The encoded file.

    Raises:
        ValueError: Unknown format, a mode the format cannot hold, or an option out of range.

    Example:
        >>> data = encode(Image.new("RGB", (8, 8)), "webp")
        >>> data[8:12]
        b'WEBP'
    """
    options = _encode_options(
        fmt,
        quality=quality,
        progressive=progressive,
        webp_method=webp_method,
        avif_speed=avif_speed,
        png_level=png_level,
    )
    if image.mode not in _ENCODABLE[fmt]:
        raise ValueError(
            f"cannot encode a {image.mode} image as {fmt}; expected {'/'.join(_ENCODABLE[fmt])}"
        )
    image.load()
    if fmt == "png":
        return encode_png(image, options["compress_level"])
    # A fresh Image object over the same pixels: save() stores its options on the object it is
    # called on, so this keeps the caller's image untouched and concurrent encodes of one image
    # independent, without copying pixels (encoders only read them). Empty info: no metadata.
    target = image._new(image.im)
    target.info = {}
    out = io.BytesIO()
    target.save(out, fmt.upper(), **options)
    return out.getvalue()


def _encode_options(
    fmt: str,
    *,
    quality: int | None,
    progressive: bool,
    webp_method: int,
    avif_speed: int,
    png_level: int,
) -> dict[str, Any]:
    if fmt not in _ENCODABLE:
        raise ValueError(f"unknown output format {fmt!r}; expected one of {sorted(_ENCODABLE)}")
    if fmt == "png":
        if quality is not None:
            raise ValueError("quality does not apply to PNG (lossless); use png_level")
        _check_range("png_level", png_level, 0, 9)
        return {"compress_level": png_level, "compress_type": zlib.Z_RLE}
    q = _DEFAULT_QUALITY[fmt] if quality is None else quality
    _check_range("quality", q, 0, 100)
    if fmt == "jpeg":
        # optimize costs nothing extra with progressive (the scans need a second pass anyway)
        # and saves a few % on baseline files.
        return {"quality": q, "optimize": True, "progressive": progressive, "subsampling": "4:2:0"}
    if fmt == "webp":
        _check_range("webp_method", webp_method, 0, 6)
        return {"quality": q, "method": webp_method}
    _check_range("avif_speed", avif_speed, 0, 10)
    # One thread per encode: callers parallelise across files, which scales better than
    # libavif's own threads on small images.
    return {"quality": q, "speed": avif_speed, "subsampling": "4:2:0", "max_threads": 1}


def _check_range(name: str, value: int, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"{name} must be an integer from {low} to {high}, got {value!r}")

"""Browser-safe previews of stored images, made with Pillow: thumbnails, checkerboards, AVIF → PNG.

Every browser shows JPEG, PNG and WebP; AVIF, TIFF and transparency need help (not every
context renders AVIF, and a transparent cutout on a white page looks like nothing happened), so
previews are always JPEG or PNG, and transparent images are shown on a checkerboard.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Literal

from PIL import Image, ImageOps, UnidentifiedImageError

__all__ = [
    "BROWSER_FORMATS",
    "Preview",
    "PreviewError",
    "checkerboard",
    "coverage",
    "mask_overlay",
    "preview",
]

# What previews are made of. Browsers show WebP too, but st.image re-encodes anything other
# than JPEG and PNG, so converting here, once and cached, is cheaper than on every rerun.
BROWSER_FORMATS = frozenset({"JPEG", "PNG"})
_CELL = 12
_LIGHT, _DARK = (255, 255, 255), (204, 204, 204)
# Magenta: no product photo is likely to be that colour, so the tinted area reads as "the mask".
_TINT = (236, 0, 140)


class PreviewError(ValueError):
    """The bytes are not an image Pillow can decode."""


@dataclass(frozen=True)
class Preview:
    """A displayable rendition of a stored image.

    Attributes:
        data: encoded bytes (JPEG or PNG, or the original bytes when they are already fine).
        mime: their content type.
        width: width of ``data`` in pixels.
        height: height of ``data`` in pixels.
        source_format: the stored file's format as Pillow names it (``AVIF``, ``JPEG`` …).
        source_size: the stored file's pixel size.
    """

    data: bytes
    mime: str
    width: int
    height: int
    source_format: str
    source_size: tuple[int, int]

    @property
    def pillow_format(self) -> Literal["JPEG", "PNG"]:
        """``JPEG`` or ``PNG``: what ``st.image(output_format=…)`` must keep."""
        return "PNG" if self.mime == "image/png" else "JPEG"


def checkerboard(size: tuple[int, int], *, cell: int = _CELL) -> Image.Image:
    """An RGB checkerboard of ``size`` with square cells of ``cell`` pixels.

    Example:
        >>> checkerboard((24, 12), cell=12).getpixel((12, 0))
        (204, 204, 204)
    """
    if cell < 1 or size[0] < 1 or size[1] < 1:
        raise ValueError(f"checkerboard needs a positive size and cell, got {size} and {cell}")
    columns, rows = -(-size[0] // cell), -(-size[1] // cell)
    pattern = Image.new("RGB", (columns, rows), _LIGHT)
    pixels = pattern.load()
    assert pixels is not None
    for y in range(rows):
        for x in range(columns):
            if (x + y) % 2:
                pixels[x, y] = _DARK
    scaled = pattern.resize((columns * cell, rows * cell), Image.Resampling.NEAREST)
    return scaled.crop((0, 0, *size))


def _open(data: bytes, max_side: int | None = None) -> Image.Image:
    try:
        image = Image.open(io.BytesIO(data))
        if max_side is not None and image.format == "JPEG":
            # Decode a JPEG at 1/2, 1/4 or 1/8 scale when that still covers the thumbnail.
            image.draft("RGB", (max_side, max_side))
        image.load()
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise PreviewError(f"not a decodable image ({len(data)} bytes): {exc}") from exc
    return image


def _stored_size(data: bytes, image: Image.Image) -> tuple[int, int]:
    if image.format != "JPEG" or max(image.size) == 0:
        return image.size
    # draft() shrank the decoded size; the header still has the stored one.
    with Image.open(io.BytesIO(data)) as header:
        return header.size


def _has_alpha(image: Image.Image) -> bool:
    return image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info


def _encode(image: Image.Image, *, lossless: bool) -> tuple[bytes, str]:
    buffer = io.BytesIO()
    if lossless:
        image.save(buffer, "PNG", compress_level=1)
        return buffer.getvalue(), "image/png"
    image.convert("RGB").save(buffer, "JPEG", quality=85, optimize=False)
    return buffer.getvalue(), "image/jpeg"


def preview(
    data: bytes,
    *,
    max_side: int | None = None,
    on_checkerboard: bool = True,
    exact: bool = False,
) -> Preview:
    """A JPEG or PNG rendition of ``data``, at most ``max_side`` pixels on its longer side.

    Transparent images are flattened onto a checkerboard (when ``on_checkerboard``) so the
    transparency is visible; masks and other grey images stay lossless PNG. Without
    ``max_side`` the full size is kept, and bytes a browser already shows pass through as they are.

    Args:
        data: the stored file's bytes.
        max_side: longest side of the result in pixels; ``None`` for full size.
        on_checkerboard: flatten transparency onto a checkerboard.
        exact: encode a conversion losslessly (PNG), so it shows the decoded pixels exactly
            (full-size views of AVIF); thumbnails are JPEG.

    Returns:
        The preview.

    Raises:
        PreviewError: ``data`` is not an image Pillow can decode.
        ValueError: ``max_side`` is not positive.

    Example:
        >>> buffer = io.BytesIO(); Image.new("RGBA", (40, 20)).save(buffer, "PNG")
        >>> preview(buffer.getvalue(), max_side=10).width
        10
    """
    if max_side is not None and max_side < 1:
        raise ValueError(f"max_side must be positive, got {max_side}")
    image = _open(data, max_side)
    source_format = image.format or "?"
    source_size = _stored_size(data, image)
    alpha = _has_alpha(image)
    small_enough = max_side is None or max(source_size) <= max_side
    if small_enough and source_format in BROWSER_FORMATS and not (alpha and on_checkerboard):
        mime = Image.MIME.get(source_format, "application/octet-stream")
        return Preview(data, mime, *image.size, source_format, source_size)
    image = ImageOps.exif_transpose(image)
    if max_side is not None:
        # reducing_gap lets Pillow shrink by whole factors first: much faster on 1600 px masters.
        image.thumbnail((max_side, max_side), Image.Resampling.LANCZOS, reducing_gap=3.0)
    if alpha and on_checkerboard:
        rgba = image.convert("RGBA")
        board = checkerboard(rgba.size).convert("RGBA")
        image = Image.alpha_composite(board, rgba).convert("RGB")
    lossless = exact or image.mode in ("L", "1", "P", "LA", "RGBA", "PA", "I", "I;16")
    encoded, mime = _encode(image, lossless=lossless)
    return Preview(encoded, mime, *image.size, source_format, source_size)


def coverage(data: bytes) -> float:
    """Share of an 8-bit mask that is product (mean of the mask / 255), from 0 to 1.

    Example:
        >>> buffer = io.BytesIO(); Image.new("L", (4, 4), 255).save(buffer, "PNG")
        >>> coverage(buffer.getvalue())
        1.0
    """
    mask = _open(data).convert("L")
    histogram = mask.histogram()
    total = mask.size[0] * mask.size[1]
    return sum(value * count for value, count in enumerate(histogram)) / (255 * total)


def mask_overlay(photo: bytes, mask: bytes, *, max_side: int, strength: float = 0.5) -> Preview:
    """The photo with what the mask calls product tinted magenta, as a JPEG thumbnail.

    A leftover strip of floor or a block of printed text taken for product shows at once,
    where a black-and-white mask beside the photo would need comparing by eye. A mask of
    another size is stretched to the photo's (the segmenter's mask matches the photo).

    Args:
        photo: the stored original's bytes.
        mask: the stored mask's bytes (8-bit, white = product).
        max_side: longest side of the result in pixels.
        strength: how strongly product pixels are tinted, from 0 (not at all) to 1.

    Raises:
        PreviewError: either is not an image Pillow can decode.
        ValueError: ``max_side`` is not positive or ``strength`` is outside 0..1.

    Example:
        >>> def png(mode, colour):
        ...     buffer = io.BytesIO(); Image.new(mode, (4, 4), colour).save(buffer, "PNG")
        ...     return buffer.getvalue()
        >>> shown = mask_overlay(png("RGB", "white"), png("L", 255), max_side=4, strength=1.0)
        >>> Image.open(io.BytesIO(shown.data)).getpixel((0, 0))[1] < 40
        True
    """
    if max_side < 1:
        raise ValueError(f"max_side must be positive, got {max_side}")
    if not 0.0 <= strength <= 1.0:
        raise ValueError(f"strength must be between 0 and 1, got {strength}")
    source = _open(photo, max_side)
    source_format, source_size = source.format or "?", _stored_size(photo, source)
    image = ImageOps.exif_transpose(source).convert("RGB")
    image.thumbnail((max_side, max_side), Image.Resampling.LANCZOS, reducing_gap=3.0)
    alpha = _open(mask).convert("L").resize(image.size, Image.Resampling.BILINEAR)
    alpha = alpha.point(lambda value: round(value * strength))
    tinted = Image.composite(Image.new("RGB", image.size, _TINT), image, alpha)
    encoded, mime = _encode(tinted, lossless=False)
    return Preview(encoded, mime, *tinted.size, source_format, source_size)

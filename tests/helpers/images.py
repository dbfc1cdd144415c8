"""Product-like photos built in code: an object on a plain or textured studio background."""

from __future__ import annotations

import io
import struct
import zlib

from PIL import Image, ImageDraw, ImageFilter


def product_photo(size: tuple[int, int] = (640, 480), *, mode: str = "RGB") -> Image.Image:
    """A dark bottle-like object with a highlight on a light background, slightly blurred."""
    width, height = size
    image = Image.new("RGB", size, (236, 236, 232))
    draw = ImageDraw.Draw(image)
    w, h = width * 0.28, height * 0.7
    left, top = (width - w) / 2, (height - h) / 2
    draw.rounded_rectangle(
        (left, top, left + w, top + h), radius=min(w, h) * 0.25, fill=(40, 70, 140)
    )
    draw.ellipse(
        (left + w * 0.2, top + h * 0.1, left + w * 0.45, top + h * 0.5), fill=(90, 130, 210)
    )
    image = image.filter(ImageFilter.GaussianBlur(1.2))
    return image if mode == "RGB" else image.convert(mode)


def jpeg_bytes(image: Image.Image, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=90, **options)
    return buffer.getvalue()


def encoded(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def varied_product(n: int) -> Image.Image:
    """Product photo number ``n``: its own size, shape, colour and placement (distinct bytes)."""
    import colorsys

    width, height = 600 + (n * 37) % 320, 600 + (n * 53) % 240
    image = Image.new("RGB", (width, height), (238 - n % 9, 238 - n % 7, 234))
    draw = ImageDraw.Draw(image)
    red, green, blue = colorsys.hsv_to_rgb((n * 0.137) % 1.0, 0.65, 0.55)
    colour = (int(red * 255), int(green * 255), int(blue * 255))
    share = 0.25 + (n % 5) * 0.06
    w, h = width * share, height * (0.55 + (n % 4) * 0.08)
    left = (width - w) * (0.35 + (n % 3) * 0.15)
    top = (height - h) / 2
    if n % 2:
        draw.ellipse((left, top, left + w, top + h), fill=colour)
    else:
        draw.rounded_rectangle((left, top, left + w, top + h), radius=min(w, h) * 0.2, fill=colour)
    highlight = tuple(min(255, c + 60) for c in colour)
    draw.ellipse((left + w * 0.2, top + h * 0.1, left + w * 0.4, top + h * 0.45), fill=highlight)
    return image.filter(ImageFilter.GaussianBlur(1.0))


def truncated_jpeg() -> bytes:
    """The first half of a JPEG: a valid header, then the data stops."""
    data = jpeg_bytes(product_photo())
    return data[: len(data) // 2]


def bomb_png() -> bytes:
    """A valid PNG header claiming 60 000 × 60 000 pixels (3.6 GP): refused before decoding."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    ihdr = struct.pack(">IIBBBBB", 60000, 60000, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0" * 100))
        + chunk(b"IEND", b"")
    )

"""Hard segmentation cases with exact ground truth, built deterministically in memory.

Each case pastes a product cut-out whose mask is known exactly onto a scene that is known to
trouble salient-object models: a busy scene (clutter and texture), a block of printed text beside
the product, white on white, and glass (a product the scene shows through). The ground truth is
the product's own mask (alpha >= 128), so a cast shadow or the text is background by definition.

Products: real photos cut out with their exact masks from the segmentation dev set (the apples of
the ``comp_*`` composites, a basketball), and two drawn ones (the benchmarks' labelled bottle, a
white mug). Real cut-outs need the dev set; without it only the drawn products are used.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from benchmarks._common import make_cutout

__all__ = ["SCENE_SIZE", "hard_cases"]

SCENE_SIZE = (1200, 900)
_FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"
_WORDS = (
    "fresh organic farm market daily offer price only today new season sale quality best "
    "local harvest kilo natural choice taste garden special gift open hours welcome store"
)


def hard_cases(data: Path | None) -> Iterator[tuple[str, Image.Image, np.ndarray]]:
    """``(name, RGB scene, boolean ground truth)`` for every hard case, always in one order."""
    products = dict(_real_products(data)) if data is not None else {}
    products["bottle"] = make_cutout(900, seed=3)
    products["mug"] = _white_mug(800)
    for name, product in products.items():
        white = name == "mug"
        scenes = ("white", "busy", "text") if white else ("busy", "text", "white")
        for k, scene in enumerate(scenes):
            seed = 100 + 10 * len(name) + k
            yield f"hard_{name}_{scene}", *_compose(product, scene, seed)
    bottle = make_cutout(900, seed=5)
    glass, shape = _glassy(bottle), bottle.getchannel("A")
    for k, scene in enumerate(("busy", "text")):
        yield f"hard_glass_{scene}", *_compose(glass, scene, 300 + k, shape=shape)


def _real_products(data: Path) -> Iterator[tuple[str, Image.Image]]:
    stems = {
        "apple1": "comp_apple_white_a",
        "apple2": "comp_apple_black",
        "ball": "fss_basketball_07",
    }
    for name, stem in stems.items():
        photo, mask = data / f"{stem}.jpg", data / f"{stem}.mask.png"
        if not (photo.exists() and mask.exists()):
            continue
        rgba = Image.open(photo).convert("RGB")
        rgba.putalpha(Image.open(mask).convert("L").point(lambda v: 255 if v > 127 else 0))
        box = rgba.getchannel("A").getbbox()
        if box is not None:
            yield name, rgba.crop(box)


def _compose(
    product: Image.Image, scene: str, seed: int, *, shape: Image.Image | None = None
) -> tuple[Image.Image, np.ndarray]:
    """Paste ``product`` on a ``scene``; the truth is ``shape`` (default: its alpha) >= 128."""
    rng = np.random.default_rng(seed)
    width, height = SCENE_SIZE
    canvas = _scene(scene, rng)
    # The product covers about half the height, placed right of centre so text fits on the left.
    scale = 0.5 * height / max(product.height, 0.8 * product.width)
    size = (max(1, round(product.width * scale)), max(1, round(product.height * scale)))
    item = product.resize(size, Image.Resampling.LANCZOS)
    x = int(width * 0.55 - size[0] / 2 + rng.integers(-40, 40))
    y = int(height * 0.5 - size[1] / 2 + rng.integers(-40, 40))
    if scene == "text":
        _print_text(canvas, (x - 40, y + size[1] // 5), rng)
    canvas.paste(item, (x, y), item)
    gt = np.zeros((height, width), dtype=bool)
    truth = product.getchannel("A") if shape is None else shape
    opaque = np.asarray(truth.resize(size, Image.Resampling.LANCZOS)) >= 128
    gt[y : y + size[1], x : x + size[0]] = opaque
    # A camera's softness, so a pasted edge is not a give-away.
    return canvas.filter(ImageFilter.GaussianBlur(0.7)), gt


def _scene(kind: str, rng: np.random.Generator) -> Image.Image:
    width, height = SCENE_SIZE
    if kind == "white":
        y = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None, None]
        rgb = 252 - 10 * y + rng.normal(0, 1.5, (height, width, 3))
        return Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8))
    base, spread = (226, 10) if kind == "text" else (150, 30)
    noise = rng.normal(0, spread, (height // 30, width // 30, 3)).astype(np.float32)
    blotches = np.stack(
        [
            np.asarray(Image.fromarray(c, "F").resize((width, height), Image.Resampling.BICUBIC))
            for c in noise.transpose(2, 0, 1)
        ],
        axis=-1,
    )
    grain = rng.normal(0, 6, (height, width, 3))
    canvas = Image.fromarray(np.clip(base + blotches + grain, 0, 255).astype(np.uint8))
    if kind == "busy":
        _clutter(canvas, rng)
    return canvas


def _clutter(canvas: Image.Image, rng: np.random.Generator) -> None:
    draw = ImageDraw.Draw(canvas)
    width, height = canvas.size
    for _ in range(60):
        x, y = int(rng.integers(0, width)), int(rng.integers(0, height))
        w, h = int(rng.integers(30, 260)), int(rng.integers(10, 200))
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        shape = int(rng.integers(0, 3))
        if shape == 0:
            draw.rectangle([x, y, x + w, y + h], fill=colour)
        elif shape == 1:
            draw.ellipse([x, y, x + w, y + h], fill=colour)
        else:
            draw.line([x, y, x + w, y + h], fill=colour, width=int(rng.integers(3, 14)))


def _print_text(canvas: Image.Image, corner: tuple[int, int], rng: np.random.Generator) -> None:
    """A poster-like block of bold dark text whose right edge meets ``corner``."""
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.truetype(_FONT, int(rng.integers(34, 46)))
    right, top = corner
    lines = [" ".join(rng.choice(_WORDS.split(), 3)).upper() for _ in range(7)]
    step = int(font.size * 1.25)
    for i, line in enumerate(lines):
        width = draw.textlength(line, font=font)
        draw.text((right - width, top + i * step), line, font=font, fill=(25, 22, 30))


def _white_mug(size: int) -> Image.Image:
    """A white mug with soft shading and a handle, on transparency."""
    shape = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(shape)
    body = (int(size * 0.15), int(size * 0.2), int(size * 0.7), int(size * 0.9))
    draw.rounded_rectangle(body, radius=int(size * 0.04), fill=255)
    draw.ellipse((int(size * 0.6), int(size * 0.35), int(size * 0.9), int(size * 0.7)), fill=255)
    draw.ellipse((int(size * 0.68), int(size * 0.43), int(size * 0.82), int(size * 0.62)), fill=0)
    x = np.linspace(-1.0, 1.0, size, dtype=np.float32)
    shade = 246 - 22 * x**2
    rgb = np.broadcast_to(shade[None, :, None], (size, size, 3)).astype(np.uint8)
    out = Image.fromarray(np.ascontiguousarray(rgb))
    out.putalpha(shape.filter(ImageFilter.GaussianBlur(1.2)))
    return out


def _glassy(product: Image.Image) -> Image.Image:
    """The product as tinted glass: its shape, mostly see-through, with bright rims."""
    alpha = product.getchannel("A")
    rim = Image.fromarray(
        np.asarray(alpha, dtype=np.int16) - np.asarray(alpha.filter(ImageFilter.MinFilter(15)))
    ).convert("L")
    body = np.asarray(alpha, dtype=np.float32) * 0.35 + np.asarray(rim, dtype=np.float32) * 0.6
    tint = Image.new("RGB", product.size, (200, 225, 230))
    # Mostly below 128: the truth is the bottle's shape, passed to ``_compose`` separately.
    tint.putalpha(Image.fromarray(np.clip(body, 0, 255).astype(np.uint8)))
    return tint

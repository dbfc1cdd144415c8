"""Benchmark helpers: deterministic, photo-like imaging inputs built in memory, and timers.

The inputs follow the reference benchmark's generator, ``gen_inputs.py`` (docs/benchmarks.md):
a 1600 px bottle cut-out with cylindrical shading, a printed label, sensor-like grain and a
feathered alpha edge, and two dithered gradient backgrounds (cool linear, warm radial). Encoder
cost depends on content, so flat test images would flatter every ratio.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from imaging.background import GradientStop, render_gradient  # noqa: E402
from imaging.composite import Shadow, composite, place  # noqa: E402

# The reference job: shadow sigma 20 px, opacity 0.3, offset 5,5 in master pixels.
REFERENCE_SHADOW = {"blur": 20.0, "opacity": 0.3, "offset": (5.0, 5.0)}


def make_cutout(size: int = 1600, seed: int = 1) -> Image.Image:
    """A textured RGBA product cut-out (a bottle with a label) on transparency."""
    rng = np.random.default_rng(seed)
    s = size / 1600
    shape = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(shape)
    draw.rounded_rectangle(_box(s, 430, 520, 1170, 1470), radius=int(120 * s), fill=255)
    draw.ellipse(_box(s, 430, 330, 1170, 720), fill=255)
    draw.rounded_rectangle(_box(s, 680, 200, 920, 470), radius=int(30 * s), fill=184)  # glass
    draw.rounded_rectangle(_box(s, 650, 110, 950, 240), radius=int(24 * s), fill=255)  # cap

    x = np.arange(size, dtype=np.float32)
    u = np.clip((x - 800 * s) / (370 * s), -1, 1)
    shade = 0.35 + 0.65 * np.sqrt(1 - u * u)
    spec = np.exp(-(((u + 0.45) / 0.09) ** 2))
    row = np.array([38, 96, 62], np.float32) * shade[:, None] + spec[:, None] * 120.0
    rgb = np.broadcast_to(row, (size, size, 3)).copy()

    label = _label(size, s, rng)
    label_mask = np.zeros((size, size), np.float32)
    top, bottom, left, right = (int(v * s) for v in (760, 1230, 450, 1150))
    label_mask[top:bottom, left:right] = 1.0
    label_rgb = np.asarray(label, np.float32) * (0.55 + 0.45 * shade)[None, :, None]
    rgb += (label_rgb - rgb) * label_mask[..., None]

    mottling = rng.normal(0.0, 9.0, (size // 40, size // 40)).astype(np.float32)
    rgb += np.asarray(
        Image.fromarray(mottling, "F").resize((size, size), Image.Resampling.BICUBIC)
    )[..., None]
    rgb += rng.normal(0.0, 5.0, (size, size, 3)).astype(np.float32)
    alpha = shape.filter(ImageFilter.GaussianBlur(2.2 * s))
    out = np.dstack([np.clip(rgb, 0, 255).astype(np.uint8), np.asarray(alpha)])
    return Image.fromarray(out, "RGBA")


def _box(s: float, *values: float) -> list[int]:
    return [round(v * s) for v in values]


def _label(size: int, s: float, rng: np.random.Generator) -> Image.Image:
    label = Image.new("RGB", (size, size), (236, 226, 200))
    draw = ImageDraw.Draw(label)
    left, top, right = int(450 * s), int(760 * s), int(1150 * s)
    for i, y in enumerate(range(top + int(20 * s), top + int(90 * s), max(1, int(14 * s)))):
        draw.rectangle(
            [left, y, right, y + int(6 * s)], fill=(170, 40, 35) if i % 2 else (200, 150, 40)
        )
    draw.text((int(560 * s), int(870 * s)), "NORDA", font=_font(120 * s), fill=(30, 50, 40))
    tagline = "Cold-pressed apple & ginger"
    draw.text((int(540 * s), int(1010 * s)), tagline, font=_font(46 * s), fill=(90, 60, 40))
    lines = ("Ingredients: apple 92%, ginger 6%, lemon 2%.", "750 ml. Keep refrigerated.")
    for k, line in enumerate(lines):
        draw.text(
            (int(490 * s), int((1075 + 32 * k) * s)), line, font=_font(26 * s), fill=(70,) * 3
        )
    x = int(980 * s)
    while x < int(1120 * s):
        width = max(1, int(rng.integers(1, 4) * s))
        if rng.random() < 0.55:
            draw.rectangle([x, int(1160 * s), x + width - 1, int(1218 * s)], fill=(20, 20, 20))
        x += width
    return label


def _font(size: float) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=max(8, int(size)))


def make_backgrounds(size: int = 1600) -> tuple[Image.Image, Image.Image]:
    """The reference's two backgrounds: a cool vertical gradient and a warm studio sweep."""
    cool = [GradientStop(0.0, (246, 247, 249)), GradientStop(1.0, (206, 212, 222))]
    # Centre to edge with the reference's r^1.5 easing, sampled as stops.
    centre, edge = np.array([255, 248, 236]), np.array([226, 196, 160])
    warm = []
    for t in np.linspace(0.0, 1.0, 9).tolist():
        r, g, b = (int(v) for v in np.round(centre + (edge - centre) * t**1.5))
        warm.append(GradientStop(t, (r, g, b)))
    return (
        render_gradient(size, cool, angle=90.0, seed=1),
        render_gradient(size, warm, kind="radial", center=(0.5, 0.42), seed=2),
    )


def make_masters(size: int = 1600) -> list[Image.Image]:
    """Two master composites of the cut-out, as the composite step makes them."""
    placement = place(make_cutout(), size, shadow=Shadow(reference_size=size, **REFERENCE_SHADOW))
    return [composite(background, placement) for background in make_backgrounds(size)]


def median_cpu(fn: Callable[[], object], repeat: int) -> tuple[float, float]:
    """Median process CPU seconds and median wall seconds of ``fn`` over ``repeat`` calls."""
    cpu, wall = [], []
    for _ in range(repeat):
        c, w = time.process_time(), time.perf_counter()
        fn()
        cpu.append(time.process_time() - c)
        wall.append(time.perf_counter() - w)
    return statistics.median(cpu), statistics.median(wall)

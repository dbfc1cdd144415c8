"""Deterministic square backgrounds: solid colours and dithered linear or radial gradients."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from PIL import Image

__all__ = ["GradientStop", "render_gradient", "render_solid"]

Color = tuple[int, int, int]

# Gradients are looked up in a table of this many steps: 1/16 of an 8-bit level between
# neighbouring entries even across a full 0-255 ramp, far below the dither noise.
_LUT_SIZE = 4096


@dataclass(frozen=True)
class GradientStop:
    """A colour at a position along a gradient.

    Attributes:
        position: 0.0 (start, or the centre of a radial gradient) to 1.0 (end, or the farthest
            corner).
        color: ``(r, g, b)``, each 0-255, in sRGB.
    """

    position: float
    color: Color

    def __post_init__(self) -> None:
        if not 0.0 <= self.position <= 1.0:
            raise ValueError(f"stop position must be within 0-1, got {self.position}")
        _check_color(self.color)


def render_solid(size: int, color: Color) -> Image.Image:
    """A square of one colour.

    Args:
        size: Side length in pixels.
        color: ``(r, g, b)``, each 0-255.

    Returns:
        An ``RGB`` image of ``size`` × ``size``.

    Raises:
        ValueError: ``size`` is not positive or a colour component is out of range.

    Example:
        >>> render_solid(4, (255, 255, 255)).getpixel((0, 0))
        (255, 255, 255)
    """
    _check_size(size)
    _check_color(color)
    return Image.new("RGB", (size, size), color)


def render_gradient(
    size: int,
    stops: Sequence[GradientStop],
    *,
    kind: Literal["linear", "radial"] = "linear",
    angle: float = 90.0,
    center: tuple[float, float] = (0.5, 0.4),
    seed: int = 0,
) -> Image.Image:
    """A square gradient, computed in floating point and dithered so 8 bits show no bands.

    The dither is triangular noise of ±1 level (the standard choice: it makes the quantisation
    error independent of the signal), the same for the three channels so it reads as a fine
    grain rather than colour speckle. The noise comes from ``seed``: the same arguments always
    give the same pixels.

    Args:
        size: Side length in pixels.
        stops: At least one stop; colours are interpolated linearly between positions (in any
            order; equal positions make a hard edge).
        kind: ``"linear"`` runs along ``angle``; ``"radial"`` is a studio sweep from ``center``
            (position 0) out to the farthest corner (position 1).
        angle: Direction of a linear gradient in degrees, clockwise from pointing right:
            0 runs left to right, 90 top to bottom.
        center: ``(x, y)`` of a radial gradient as fractions of the side.
        seed: Seed of the dither noise.

    Returns:
        An ``RGB`` image of ``size`` × ``size``.

    Raises:
        ValueError: Bad size, no stops, or an unknown kind.

    Example:
        >>> sweep = [GradientStop(0.0, (250, 250, 250)), GradientStop(1.0, (200, 200, 205))]
        >>> render_gradient(1600, sweep, kind="radial").size
        (1600, 1600)
    """
    _check_size(size)
    if not stops:
        raise ValueError("a gradient needs at least one stop")
    if kind not in ("linear", "radial"):
        raise ValueError(f"kind must be 'linear' or 'radial', got {kind!r}")
    scale = _LUT_SIZE - 1
    if kind == "linear":
        index = _linear_index(size, angle, scale)
    else:
        index = _radial_index(size, center, scale)
    pixels = np.take(_lookup_table(stops), index, axis=0)
    pixels += _dither(size, seed)[..., None]
    np.clip(pixels, 0.0, 255.0, out=pixels)
    return Image.fromarray(pixels.astype(np.uint8))


def _linear_index(size: int, angle: float, scale: int) -> np.ndarray:
    # The projection on the direction is x·cos + y·sin, a sum of a row and a column term, so a
    # broadcast add builds the whole field in one pass.
    rad = math.radians(angle)
    dx, dy = math.cos(rad), math.sin(rad)
    low = min(0.0, dx) + min(0.0, dy)  # the projection's extremes sit at the corners
    span = abs(dx) + abs(dy)
    coords = (np.arange(size, dtype=np.float32) + 0.5) / size
    factor = scale / span
    cols = (coords * dx - low) * factor + 0.5  # + 0.5: round when truncated below
    rows = coords * dy * factor
    return np.clip(rows[:, None] + cols[None, :], 0, scale).astype(np.intp)


def _radial_index(size: int, center: tuple[float, float], scale: int) -> np.ndarray:
    cx, cy = center
    if not (0.0 <= cx <= 1.0 and 0.0 <= cy <= 1.0):
        raise ValueError(f"center must lie within the square (0-1), got {center}")
    reach = math.hypot(max(cx, 1 - cx), max(cy, 1 - cy))  # to the farthest corner
    coords = (np.arange(size, dtype=np.float32) + 0.5) / size
    factor = scale / reach
    radius = np.hypot((coords - cy)[:, None] * factor, (coords - cx)[None, :] * factor)
    radius += 0.5
    return np.clip(radius, 0, scale).astype(np.intp)


def _lookup_table(stops: Sequence[GradientStop]) -> np.ndarray:
    ordered = sorted(stops, key=lambda stop: stop.position)
    positions = [stop.position for stop in ordered]
    steps = np.linspace(0.0, 1.0, _LUT_SIZE)
    channels = [np.interp(steps, positions, [stop.color[c] for stop in ordered]) for c in range(3)]
    return np.stack(channels, axis=1).astype(np.float32)


def _dither(size: int, seed: int) -> np.ndarray:
    # Triangular noise in (-1, 1) from two uniform bytes per pixel (fast and platform
    # independent: PCG64 bytes), plus 0.5 so the final truncation rounds.
    raw = np.frombuffer(np.random.default_rng(seed).bytes(2 * size * size), dtype=np.uint8)
    noise = raw[: size * size].astype(np.float32)
    noise += raw[size * size :]
    noise *= 1.0 / 256.0
    noise += 1.0 / 256.0 - 0.5
    return noise.reshape(size, size)


def _check_size(size: int) -> None:
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ValueError(f"size must be a positive integer, got {size!r}")


def _check_color(color: Color) -> None:
    if len(color) != 3 or not all(isinstance(c, int) and 0 <= c <= 255 for c in color):
        raise ValueError(f"color must be three integers 0-255, got {color!r}")

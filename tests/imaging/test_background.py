"""imaging.background: solid colours and dithered gradients."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from imaging.background import GradientStop, render_gradient, render_solid
from imaging.codec import decode, encode

DARK_TO_LIGHT = [GradientStop(0.0, (20, 20, 20)), GradientStop(1.0, (60, 60, 60))]
SWEEP = [GradientStop(0.0, (250, 248, 245)), GradientStop(1.0, (190, 180, 170))]
IDEAL_ROWS = 20 + 40 * (np.arange(1600) + 0.5) / 1600


def row_means(image: Image.Image) -> np.ndarray:
    return np.asarray(image)[..., 1].astype(np.float64).mean(axis=1)


def test_render_solid():
    image = render_solid(64, (1, 2, 3))
    assert (image.mode, image.size) == ("RGB", (64, 64))
    assert image.getcolors() == [(64 * 64, (1, 2, 3))]


@pytest.mark.parametrize(("size", "color"), [(0, (0, 0, 0)), (8, (0, 0, 256)), (8, (0, 0))])
def test_render_solid_rejects_bad_arguments(size, color):
    with pytest.raises(ValueError):
        render_solid(size, color)


def test_gradient_has_no_banding():
    image = render_gradient(1600, DARK_TO_LIGHT)
    assert (image.mode, image.size) == ("RGB", (1600, 1600))
    means = row_means(image)
    # Undithered, the rows would sit on 41 levels, up to 0.5 away from the ideal ramp; dithered,
    # every row's average follows the ramp.
    assert np.abs(means - IDEAL_ROWS).max() < 0.1
    assert len(np.unique(np.round(means, 2))) > 1000


def test_gradient_has_no_banding_after_jpeg():
    reread = decode(encode(render_gradient(1600, DARK_TO_LIGHT), "jpeg"))
    bands = row_means(reread).reshape(200, 8).mean(axis=1)  # one value per 8-row JPEG block
    ideal = IDEAL_ROWS.reshape(200, 8).mean(axis=1)
    assert len(np.unique(np.round(bands, 2))) > 100  # plain 8 bits would give 41
    assert np.abs(bands - ideal).max() < 0.8


def test_gradient_is_deterministic():
    first = render_gradient(256, SWEEP, kind="radial", seed=7)
    assert first.tobytes() == render_gradient(256, SWEEP, kind="radial", seed=7).tobytes()
    assert first.tobytes() != render_gradient(256, SWEEP, kind="radial", seed=8).tobytes()


@pytest.mark.parametrize(
    ("angle", "start", "end"),
    [(0.0, (0, 128), (255, 128)), (90.0, (128, 0), (128, 255)), (180.0, (255, 128), (0, 128))],
)
def test_linear_gradient_direction(angle, start, end):
    stops = [GradientStop(0.0, (0, 0, 0)), GradientStop(1.0, (250, 250, 250))]
    image = render_gradient(256, stops, angle=angle)
    assert image.getpixel(start)[0] <= 2
    assert image.getpixel(end)[0] >= 248


def test_diagonal_gradient_runs_corner_to_corner():
    stops = [GradientStop(0.0, (0, 0, 0)), GradientStop(1.0, (250, 250, 250))]
    image = render_gradient(256, stops, angle=45.0)
    assert image.getpixel((0, 0))[0] <= 2
    assert image.getpixel((255, 255))[0] >= 248
    assert abs(image.getpixel((255, 0))[0] - 125) <= 3


def test_gradient_interpolates_between_unsorted_stops():
    stops = [
        GradientStop(1.0, (0, 0, 200)),
        GradientStop(0.0, (200, 0, 0)),
        GradientStop(0.5, (0, 200, 0)),
    ]
    image = render_gradient(200, stops, angle=90.0)
    middle = np.asarray(image)[95:105].reshape(-1, 3).mean(axis=0)
    assert np.allclose(middle, (0, 200, 0), atol=6)


def test_radial_sweep_is_light_in_the_centre_and_dark_at_the_corners():
    image = render_gradient(400, SWEEP, kind="radial", center=(0.5, 0.4))
    pixels = np.asarray(image).astype(np.float64)
    centre = pixels[155:165, 195:205].reshape(-1, 3).mean(axis=0)
    assert np.allclose(centre, (250, 248, 245), atol=1.5)
    farthest = pixels[-4:, :4].reshape(-1, 3).mean(axis=0)
    assert np.allclose(farthest, (190, 180, 170), atol=2)
    assert pixels[0, 0, 0] > farthest[0]  # the top corners are nearer the centre


@pytest.mark.parametrize(
    "kwargs",
    [
        {"stops": []},
        {"kind": "conic"},
        {"kind": "radial", "center": (1.5, 0.5)},
        {"size": 0},
    ],
)
def test_gradient_rejects_bad_arguments(kwargs):
    args = {"size": 16, "stops": SWEEP} | kwargs
    size, stops = args.pop("size"), args.pop("stops")
    with pytest.raises(ValueError):
        render_gradient(size, stops, **args)


@pytest.mark.parametrize(("position", "color"), [(1.5, (0, 0, 0)), (0.5, (0, 0, 300))])
def test_gradient_stop_validates(position, color):
    with pytest.raises(ValueError):
        GradientStop(position, color)

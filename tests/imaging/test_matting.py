"""imaging.matting: model input, prediction → alpha (zoom blend, guided filter), mask, cutout."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFilter

from imaging.matting import (
    binary_mask,
    cutout,
    mirror_average,
    normalize_prediction,
    prediction_to_alpha,
    to_model_input,
    zoom_box,
)


def disc_scene(size=(240, 180), box=(70, 40, 170, 140)):
    """A dark disc on a light background, and its exact mask."""
    image = Image.new("RGB", size, (232, 230, 226))
    truth = Image.new("L", size, 0)
    ImageDraw.Draw(image).ellipse(box, fill=(40, 44, 60))
    ImageDraw.Draw(truth).ellipse(box, fill=255)
    return image, np.asarray(truth) > 127


def coarse_map(truth: np.ndarray, size: int = 320, blur: float = 6.0) -> np.ndarray:
    """What a 320×320 model gives back: the mask squashed, blurred and slightly too fat."""
    small = Image.fromarray(truth.astype(np.uint8) * 255).resize((size, size), Image.BILINEAR)
    small = small.filter(ImageFilter.MaxFilter(5)).filter(ImageFilter.GaussianBlur(blur))
    return np.asarray(small, dtype=np.float32)[None, None] / 255.0 * 0.9 + 0.05


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / (a | b).sum())


# --- to_model_input -------------------------------------------------------------------------


def test_model_input_is_nchw_float32_and_imagenet_normalised():
    x = to_model_input(Image.new("RGB", (50, 30), (255, 0, 0)))
    assert x.shape == (1, 3, 320, 320)
    assert x.dtype == np.float32 and x.flags["C_CONTIGUOUS"]
    assert x[0, 0].mean() == pytest.approx((1 - 0.485) / 0.229, abs=1e-4)
    assert x[0, 1].mean() == pytest.approx((0 - 0.456) / 0.224, abs=1e-4)


def test_model_input_divides_by_the_image_maximum_and_accepts_other_modes():
    grey = to_model_input(Image.new("L", (10, 10), 100), size=4)
    assert grey.shape == (1, 3, 4, 4)
    assert grey[0, 2, 0, 0] == pytest.approx((1 - 0.406) / 0.225, abs=1e-4)  # 100 / max(100)


def test_model_input_rejects_bad_size():
    with pytest.raises(ValueError):
        to_model_input(Image.new("RGB", (4, 4)), size=0)


# --- normalize / mirror / zoom --------------------------------------------------------------


def test_normalize_prediction_shapes_and_constant_map():
    out = normalize_prediction(np.array([[[[1.0, 3.0], [2.0, 5.0]]]]))
    assert out.shape == (2, 2) and out.dtype == np.float32
    assert out.min() == 0.0 and out.max() == 1.0
    assert not normalize_prediction(np.full((3, 3), 7.0)).any()


@pytest.mark.parametrize("bad", [np.zeros(4), np.zeros((2, 3, 3)), np.array([[np.nan, 1.0]])])
def test_normalize_prediction_rejects_malformed_maps(bad):
    with pytest.raises(ValueError):
        normalize_prediction(bad)


def test_mirror_average_flips_the_mirrored_map_back():
    pred = np.array([[0.0, 0.0, 1.0]])
    assert mirror_average(pred, pred[:, ::-1]).tolist() == [[0.0, 0.0, 1.0]]
    with pytest.raises(ValueError):
        mirror_average(pred, np.zeros((2, 2)))


def test_zoom_box_only_when_the_crop_shows_more_source_pixels():
    pred = np.zeros((320, 320), np.float32)
    pred[120:200, 140:180] = 1.0
    box = zoom_box(pred, (3200, 3200), margin=0.2)
    assert box == (1320, 1040, 1880, 2160)
    assert zoom_box(pred, (320, 320)) is None  # a small photo has nothing more to show
    full = np.ones((320, 320), np.float32)
    full[0, 0] = 0.0
    assert zoom_box(full, (4000, 3000)) is None  # the product fills the frame
    assert zoom_box(np.zeros((8, 8)), (4000, 3000)) is None
    with pytest.raises(ValueError):
        zoom_box(pred, (100, 100), margin=-1)


# --- prediction_to_alpha --------------------------------------------------------------------


def test_alpha_is_mode_l_at_the_source_size():
    alpha = prediction_to_alpha(np.random.default_rng(0).random((320, 320)), (123, 45))
    assert alpha.mode == "L" and alpha.size == (123, 45)


def test_guided_filter_snaps_a_coarse_map_to_the_photo_edges():
    image, truth = disc_scene()
    pred = coarse_map(truth)
    plain = np.asarray(prediction_to_alpha(pred, image.size)) >= 128
    guided_alpha = prediction_to_alpha(pred, image.size, guide=image)
    guided = np.asarray(guided_alpha) >= 128
    assert iou(guided, truth) > 0.97
    assert iou(guided, truth) > iou(plain, truth)
    values = np.asarray(guided_alpha)
    assert values[truth].min() >= 128 - 40 and values[~truth].max() <= 128 + 40
    assert set(np.unique(values[70:110, 100:140])) == {255}  # interior is fully opaque


def square_map(box: tuple[int, int, int, int], value: float = 1.0, size: int = 320) -> np.ndarray:
    """A model map holding ``value`` over ``box`` (model pixels) and 0 elsewhere."""
    pred = np.zeros((size, size), np.float32)
    pred[box[1] : box[3], box[0] : box[2]] = value
    pred[0, 0] = max(pred[0, 0], 1e-3)  # never constant, whatever the box
    return pred


def test_zoom_map_refines_the_edges_the_first_pass_found():
    # Whole-image pass: a square over source x 100..300 of a 400x300 photo; the zoomed look over
    # the box (100, 50, 300, 250) sees its left 40 source px as background.
    base = square_map((80, 64, 240, 256))
    inner = square_map((0, 0, 320, 320))
    inner[:, :64] = 0.0  # source x 100..140 is background in the zoomed look
    alpha = np.asarray(prediction_to_alpha(base, (400, 300), zoom=(inner, (100, 50, 300, 250))))
    assert alpha[150, 160] == 255  # inside both passes
    assert alpha[150, 120] == 0  # the zoomed look removed what the whole-image pass blurred in
    assert alpha[150, 103] > alpha[150, 125]  # feathered where the box edge is inside the frame
    assert alpha[10, 10] == 0 and alpha[290, 390] == 0  # outside: the whole-image map


def test_zoom_map_cannot_add_a_region_the_first_pass_left_out():
    # The whole-image pass finds the product on the right; the zoomed look also claims a block
    # on the left (printed text beside the product) that the first pass had rejected.
    base = square_map((200, 100, 280, 220))
    inner = square_map((0, 0, 320, 320), value=0.0)
    inner[60:260, 20:120] = 1.0  # the text block, source x ~ 112..175
    inner[60:260, 180:300] = 1.0  # the product again
    alpha = np.asarray(prediction_to_alpha(base, (400, 300), zoom=(inner, (100, 50, 300, 250))))
    assert alpha[150, 140] == 0  # the block stays out
    assert alpha[150, 300] == 255  # the product stays in


def test_mirrored_look_cannot_add_a_region_and_an_unsure_one_cannot_remove_the_core():
    image, truth = disc_scene()
    pred = coarse_map(truth)[0, 0]
    mirrored = pred[:, ::-1].copy()
    mirrored[:, 260:300] = 1.0  # a region only the mirrored look sees (mirrored-left of the photo)
    mirrored[100:220, 100:220] = 0.3  # and unsure about the disc's centre
    alpha = np.asarray(prediction_to_alpha(pred, image.size, guide=image, mirrored=mirrored))
    plain = np.asarray(prediction_to_alpha(pred, image.size, guide=image))
    assert alpha[:, :20].max() < 128  # the strip only the mirrored look saw stays background
    assert (alpha[truth] >= 128).mean() > 0.98  # the disc's core is kept
    assert iou(alpha >= 128, truth) > 0.95
    assert iou(alpha >= 128, truth) >= iou(plain >= 128, truth) - 0.01


def test_a_sure_second_look_may_remove_part_of_the_first_pass():
    base = square_map((40, 40, 280, 280))
    inner = square_map((0, 0, 320, 320))
    inner[:, 160:] = 0.0  # the zoomed look is sure the right half is background (clutter)
    alpha = np.asarray(prediction_to_alpha(base, (400, 400), zoom=(inner, (0, 0, 400, 400))))
    assert alpha[200, 100] == 255 and alpha[200, 300] == 0


def test_large_photo_is_refined_at_working_resolution():
    image, truth = disc_scene((3000, 2000), (900, 500, 2100, 1500))
    pred = coarse_map(truth)
    alpha = prediction_to_alpha(pred, image.size, guide=image)
    assert alpha.size == (3000, 2000)
    plain = np.asarray(prediction_to_alpha(pred, image.size)) >= 128
    assert iou(np.asarray(alpha) >= 128, truth) > max(0.95, iou(plain, truth) + 0.01)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"size": (0, 10)},
        {"size": (10, 10), "sharpen": 0.5},
        {"size": (10, 10), "guide": Image.new("RGB", (11, 10))},
        {"size": (10, 10), "zoom": (np.ones((4, 4)), (5, 5, 12, 8))},
        {"size": (10, 10), "zoom": (np.eye(4), (0, 0, 5, 5)), "mirrored": np.eye(4)},
        {"size": (10, 10), "mirrored": np.eye(3)},
    ],
)
def test_alpha_rejects_bad_arguments(kwargs):
    size = kwargs.pop("size")
    with pytest.raises(ValueError):
        prediction_to_alpha(np.eye(4), size, **kwargs)


# --- binary_mask and cutout -----------------------------------------------------------------


def test_binary_mask_is_255_or_0_at_threshold():
    alpha = Image.fromarray(np.array([[0, 127, 128, 255]], np.uint8))
    mask = binary_mask(alpha)
    assert mask.mode == "L" and np.asarray(mask).tolist() == [[0, 0, 255, 255]]
    assert np.asarray(binary_mask(alpha, threshold=255)).tolist() == [[0, 0, 0, 255]]
    with pytest.raises(ValueError):
        binary_mask(alpha.convert("RGB"))
    with pytest.raises(ValueError):
        binary_mask(alpha, threshold=0)


def test_cutout_is_rgba_trimmed_to_bbox_plus_margin():
    image = Image.new("RGB", (200, 100), (10, 20, 30))
    alpha = Image.new("L", (200, 100), 0)
    alpha.paste(255, (50, 20, 150, 70))
    alpha.paste(60, (45, 20, 50, 70))  # soft edge below the threshold stays in the cutout
    before = image.tobytes()
    product, bbox = cutout(image, alpha, margin=0.1)
    assert bbox == (50, 20, 150, 70)
    assert product.mode == "RGBA" and product.size == (120, 70)  # 10 px margin, clipped at y=0/100
    assert product.getpixel((60, 20)) == (10, 20, 30, 255)
    assert product.getpixel((5, 20)) == (10, 20, 30, 60)
    assert image.tobytes() == before and image.mode == "RGB"


def test_cutout_rejects_empty_alpha_and_bad_arguments():
    image = Image.new("RGB", (20, 20))
    with pytest.raises(ValueError, match="empty"):
        cutout(image, Image.new("L", (20, 20), 127))
    with pytest.raises(ValueError):
        cutout(image, Image.new("L", (21, 20), 255))
    with pytest.raises(ValueError):
        cutout(image, Image.new("L", (20, 20), 255), margin=-0.1)

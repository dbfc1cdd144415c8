"""imaging.quality: each mask check on tiny masks built in code, passing and failing."""

from __future__ import annotations

import pytest
from PIL import Image, ImageDraw

from imaging.quality import (
    Check,
    MaskThresholds,
    foreground_share,
    fragments,
    mask_checks,
    soft_share,
    strokes,
    summarise,
    touches_frame,
    view_agreement,
)


def product(size=(80, 60), box=(25, 15, 55, 45)) -> Image.Image:
    """A solid product (255) on background (0)."""
    alpha = Image.new("L", size, 0)
    alpha.paste(255, box)
    return alpha


def test_soft_share_passes_a_crisp_cutout_and_fails_a_hazy_one():
    crisp = product()
    hazy = product()
    hazy.paste(100, (5, 5, 75, 12))  # a wide half-transparent haze above the product
    assert soft_share(crisp).passed and soft_share(crisp).value == 0.0
    check = soft_share(hazy, max_share=0.12)
    assert not check.passed and check.value == pytest.approx(490 / 900, abs=0.01)
    assert (
        check.name == "soft_alpha"
        and check.threshold == 0.12
        and "half-transparent" in check.detail
    )


def test_touches_frame_fails_when_the_product_runs_off_the_photo():
    assert touches_frame(product()).passed
    cut = product(box=(0, 15, 80, 45))  # spans the whole width: touches left and right edges
    check = touches_frame(cut, max_share=0.05)
    assert not check.passed and check.value == pytest.approx(60 / 276, abs=0.01)


def test_foreground_share_bounds_both_ways():
    tiny, huge = product(box=(40, 30, 42, 32)), product(box=(0, 0, 80, 55))
    assert [c.passed for c in foreground_share(product())] == [True, True]
    assert [c.passed for c in foreground_share(tiny, min_share=0.03)] == [False, True]
    assert [c.passed for c in foreground_share(huge, max_share=0.7)] == [True, False]
    assert [c.name for c in foreground_share(huge)] == ["foreground_min", "foreground_max"]


def test_fragments_counts_the_area_outside_the_largest_part_and_ignores_specks():
    one = product()
    two = product()
    two.paste(255, (62, 20, 75, 40))  # a second object: 260 px beside 900
    speck = product()
    speck.paste(255, (70, 5, 71, 6))  # 1 px: below 0.2 % of the product
    assert fragments(one).value == 0.0 and fragments(speck).value == 0.0
    check = fragments(two, max_share=0.1)
    assert not check.passed and check.value == pytest.approx(260 / 1160, abs=1e-3)
    assert "1 other part" in check.detail


def test_fragments_joins_parts_that_touch_across_rows():
    u_shape = Image.new("L", (30, 30), 0)
    u_shape.paste(255, (2, 2, 6, 28))
    u_shape.paste(255, (20, 2, 24, 28))
    u_shape.paste(255, (2, 24, 24, 28))  # the bottom bar joins both arms
    assert fragments(u_shape).value == 0.0


def test_strokes_fails_on_printed_lines_and_passes_a_solid_product():
    text = product()
    draw = ImageDraw.Draw(text)
    for y in range(2, 60, 5):
        draw.line([(0, y), (22, y)], fill=255, width=1)  # one-pixel lines: letters' strokes
    assert strokes(product()).passed and strokes(product()).value == 0.0
    check = strokes(text, max_share=0.01)
    assert not check.passed and check.value > 0.2


def test_checks_run_at_a_bounded_size_with_the_same_answer():
    small, large = product(), product().resize((800, 600), Image.Resampling.NEAREST)
    assert [c.passed for c in mask_checks(large)] == [c.passed for c in mask_checks(small)]
    assert fragments(large).value == fragments(small).value


def test_view_agreement_compares_a_mirrored_second_look():
    image = Image.new("RGB", (80, 60), "white")
    alpha = product()

    def steady(photo: Image.Image) -> Image.Image:  # sees the product wherever it is mirrored to
        return alpha.transpose(Image.Transpose.FLIP_LEFT_RIGHT)

    def confused(photo: Image.Image) -> Image.Image:
        return product(box=(0, 0, 20, 20))

    assert view_agreement(image, alpha, steady).value == 1.0
    check = view_agreement(image, alpha, confused, min_iou=0.9)
    assert not check.passed and check.value == 0.0
    with pytest.raises(ValueError, match="segment returned"):
        view_agreement(image, alpha, lambda photo: Image.new("L", (5, 5)))


def test_mask_checks_use_the_given_thresholds_and_summarise_gives_the_verdict():
    hazy = product()
    hazy.paste(100, (5, 5, 75, 12))
    strict, loose = MaskThresholds(), MaskThresholds(soft_alpha_max=0.9)
    assert summarise(mask_checks(product(), strict)).verdict == "pass"
    failed = summarise(mask_checks(hazy, strict))
    assert failed.verdict == "review" and failed.score == pytest.approx(5 / 6, abs=1e-3)
    assert [c.name for c in failed.checks if not c.passed] == ["soft_alpha"]
    assert summarise(mask_checks(hazy, loose)).verdict == "pass"


def test_check_as_dict_is_the_published_shape():
    check = Check("strokes", 0.5, 0.01, False, "text")
    assert check.as_dict() == {
        "name": "strokes",
        "value": 0.5,
        "threshold": 0.01,
        "passed": False,
        "detail": "text",
    }


@pytest.mark.parametrize(
    "call",
    [
        lambda a: soft_share(a, max_share=1.5),
        lambda a: touches_frame(a, max_share=-0.1),
        lambda a: foreground_share(a, min_share=2),
        lambda a: fragments(Image.new("RGB", (4, 4))),
    ],
)
def test_bad_arguments_are_refused(call):
    with pytest.raises(ValueError):
        call(product())


def test_rgba_cutouts_are_read_by_their_alpha():
    rgba = Image.new("RGBA", (80, 60), (10, 20, 30, 0))
    rgba.putalpha(product())
    assert [c.value for c in mask_checks(rgba)] == [c.value for c in mask_checks(product())]


def test_source_alpha_puts_a_trimmed_cutout_back_where_the_mask_says() -> None:
    from imaging.quality import source_alpha

    mask = Image.new("L", (60, 40))
    mask.paste(255, (30, 10, 50, 30))
    cut = Image.new("RGBA", (26, 26), (0, 0, 0, 0))
    cut.paste((5, 5, 5, 255), (3, 3, 23, 23))
    cut.paste((5, 5, 5, 90), (1, 1, 3, 23))  # a soft rim outside the product box
    placed = source_alpha(cut, mask)
    assert placed.size == mask.size
    assert placed.point(lambda v: 255 if v >= 128 else 0).getbbox() == (30, 10, 50, 30)
    assert placed.getpixel((28, 15)) == 90  # the soft rim lands left of the product
    assert source_alpha(cut, Image.new("L", (60, 40))).getbbox() is None  # empty mask

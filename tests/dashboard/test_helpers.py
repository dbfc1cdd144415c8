"""The dashboard's pure parts: stages, formatting, previews, Prefect links, the server command."""

from __future__ import annotations

import io
import sys
import zipfile

import pytest
from PIL import Image

from core.settings import Settings
from core.tables import STATUS_ORDER, JobStatus, Step
from dashboard.actions import flow_run_url, prefect_ui_base
from dashboard.fmt import human_bytes, human_ms, pipeline_stages, stage_number, usd
from dashboard.images import PreviewError, checkerboard, coverage, preview
from dashboard.launch import APP_PATH, streamlit_argv, streamlit_env
from dashboard.stats import percentile as _percentile


@pytest.mark.parametrize(
    ("status", "number"), [(s.value, n) for n, s in enumerate(STATUS_ORDER, 1)]
)
def test_step_k_of_7_follows_the_status_order(status, number):
    assert stage_number(status) == number


@pytest.mark.parametrize(
    ("step", "number"),
    [
        (Step.DOWNLOAD, 2),
        (Step.REMOVE_BACKGROUND, 2),
        (Step.GENERATE_BACKGROUNDS, 3),
        (Step.COMPOSITE, 4),
        (Step.DERIVATIVES, 5),
        (Step.MANIFEST, 6),
        (Step.PUBLISH, 7),
    ],
)
def test_a_failed_job_counts_the_stage_its_step_was_making(step, number):
    assert stage_number("FAILED", step.value) == number
    states = [stage.state for stage in pipeline_stages("FAILED", step.value)]
    assert states == ["done"] * (number - 1) + ["failed"] + ["pending"] * (7 - number)


def test_a_failed_job_without_a_step_uses_the_completed_steps():
    completed = ("download", "remove_background", "generate_backgrounds")
    assert stage_number("FAILED", None, completed) == 4
    assert stage_number("FAILED", None, ()) == 2


def test_running_and_done_stages():
    assert [s.state for s in pipeline_stages("COMPOSITED")] == ["done"] * 4 + ["current"] + [
        "pending"
    ] * 2
    assert {s.state for s in pipeline_stages("DONE")} == {"done"}
    assert [s.status for s in pipeline_stages("NEW")] == [s.value for s in STATUS_ORDER]
    assert JobStatus.FAILED.value not in [s.status for s in pipeline_stages("FAILED", "composite")]


def test_formatting():
    assert (
        human_bytes(0) == "0 B" and human_bytes(1_500) == "1.5 KB" and human_bytes(2e9) == "2.0 GB"
    )
    assert human_ms(999.4) == "999 ms" and human_ms(61_000) == "1 min 01 s"
    assert usd(0) == "$0.0000" and usd(1234.5) == "$1,234.50"


def test_nearest_rank_percentiles():
    values = [float(v) for v in range(1, 21)]
    assert _percentile(values, 0.5) == 10.0
    assert _percentile(values, 0.95) == 19.0
    assert _percentile([7.0], 0.95) == 7.0


def _encoded(image: Image.Image, fmt: str) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt)
    return buffer.getvalue()


def test_avif_preview_is_a_jpeg_thumbnail_with_the_stored_size():
    data = _encoded(Image.new("RGB", (600, 300), (200, 40, 40)), "AVIF")
    result = preview(data, max_side=120)
    assert result.mime == "image/jpeg" and (result.width, result.height) == (120, 60)
    assert result.source_format == "AVIF" and result.source_size == (600, 300)
    decoded = Image.open(io.BytesIO(result.data))
    assert decoded.format == "JPEG" and abs(decoded.getpixel((60, 30))[0] - 200) < 12


def test_full_size_avif_is_lossless_png():
    data = _encoded(Image.new("RGB", (64, 32), (10, 200, 30)), "AVIF")
    result = preview(data, exact=True)
    assert result.mime == "image/png" and result.pillow_format == "PNG"
    assert (result.width, result.height) == (64, 32)


def test_transparent_cutout_is_shown_on_a_checkerboard():
    cutout = Image.new("RGBA", (48, 48), (0, 0, 0, 0))
    cutout.paste((0, 0, 255, 255), (16, 16, 32, 32))
    result = preview(_encoded(cutout, "PNG"), max_side=48)
    shown = Image.open(io.BytesIO(result.data)).convert("RGB")

    def near(pixel: tuple[int, ...], expected: tuple[int, int, int]) -> bool:  # JPEG: ±6
        return all(abs(a - b) <= 6 for a, b in zip(pixel, expected, strict=True))

    assert near(shown.getpixel((24, 24)), (0, 0, 255))
    assert near(shown.getpixel((2, 2)), (255, 255, 255)), "transparent area is a checkerboard"
    assert near(shown.getpixel((14, 2)), (204, 204, 204))


def test_small_jpeg_passes_through_and_large_jpeg_is_reduced():
    small = _encoded(Image.new("RGB", (100, 80), "white"), "JPEG")
    assert preview(small, max_side=200).data == small
    large = _encoded(Image.new("RGB", (1600, 1600), "white"), "JPEG")
    result = preview(large, max_side=200)
    assert (result.width, result.height) == (200, 200) and result.source_size == (1600, 1600)


def test_mask_stays_lossless_and_coverage_is_the_product_share():
    mask = Image.new("L", (40, 10), 0)
    mask.paste(255, (0, 0, 10, 10))
    data = _encoded(mask, "PNG")
    assert preview(data, max_side=20).mime == "image/png"
    assert coverage(data) == pytest.approx(0.25)


def test_not_an_image_is_a_preview_error():
    with pytest.raises(PreviewError, match="not a decodable image"):
        preview(b"<html>not found</html>", max_side=100)
    with pytest.raises(ValueError, match="max_side"):
        preview(b"", max_side=0)


def test_checkerboard_cells():
    board = checkerboard((30, 10), cell=10)
    assert [board.getpixel((x, 0)) for x in (0, 10, 20)] == [
        (255, 255, 255),
        (204, 204, 204),
        (255, 255, 255),
    ]


@pytest.mark.parametrize(
    ("api_url", "bind", "browser", "expected"),
    [
        ("http://prefect.internal:4200/api", "127.0.0.1", None, "http://prefect.internal:4200"),
        ("http://10.0.0.5:4200/api/", "127.0.0.1", None, "http://10.0.0.5:4200"),
        (
            "https://api.prefect.cloud/api/accounts/acc-1/workspaces/ws-2",
            "127.0.0.1",
            None,
            "https://app.prefect.cloud/account/acc-1/workspace/ws-2",
        ),
        (None, "127.0.0.1", "ops.example", "http://127.0.0.1:4300"),
        (None, "0.0.0.0", "ops.example", "http://ops.example:4300"),
        (None, "0.0.0.0", None, "http://127.0.0.1:4300"),
    ],
)
def test_prefect_ui_location(api_url, bind, browser, expected):
    settings = Settings(prefect_api_url=api_url, bind=bind, prefect_port=4300)
    assert prefect_ui_base(settings, browser) == expected
    assert flow_run_url(settings, "abc", browser) == f"{expected}/runs/flow-run/abc"


def test_streamlit_command_is_headless_without_telemetry():
    settings = Settings(dashboard_port=8600, bind="0.0.0.0")
    argv = streamlit_argv(settings)
    assert argv[:5] == [sys.executable, "-m", "streamlit", "run", str(APP_PATH)]
    options = dict(zip(argv[5::2], argv[6::2], strict=True))
    assert options["--server.port"] == "8600" and options["--server.address"] == "0.0.0.0"
    assert options["--server.headless"] == "true"
    assert options["--browser.gatherUsageStats"] == "false"
    assert streamlit_argv(settings, port=9999)[6] == "9999"


def test_streamlit_env_points_rerun_at_the_embedded_prefect_unless_told_otherwise():
    settings = Settings(prefect_port=4300)
    env = streamlit_env(settings, {"PATH": "/bin"})
    assert env["PREFECT_API_URL"] == "http://127.0.0.1:4300/api"
    assert env["PREFECT_SERVER_EPHEMERAL_ENABLED"] == "false" and env["PATH"] == "/bin"
    mine = streamlit_env(settings, {"PREFECT_API_URL": "http://prefect:4200/api"})
    assert mine["PREFECT_API_URL"] == "http://prefect:4200/api"


def test_zip_of_all_assets_lists_missing_files(done_job, settings, store):
    from dashboard import objects, queries
    from dashboard.downloads import zip_assets

    detail = queries.load_job(settings.database_url, done_job)
    missing = detail.assets_of("mask")[0].key
    store.delete(missing)
    archive = zipfile.ZipFile(io.BytesIO(zip_assets(detail, objects.store_ref(settings))))
    names = set(archive.namelist())
    assert len(names) == 26  # 25 files + the note
    assert missing not in names and missing in archive.read("MISSING.txt").decode()
    original = detail.assets_of("original")[0]
    assert archive.read(original.key) == store.get(original.key)


def test_html_views_escape_text_and_keep_links():
    from dashboard.htmlviews import Link, table_html

    html = table_html(
        ("key", "download"), [("<script>x</script>", Link("get", "https://s3/k?a=1&b=2"))]
    )
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert '<a href="https://s3/k?a=1&amp;b=2" target="_blank" rel="noopener">get</a>' in html


def test_timeline_places_steps_on_one_axis_and_runs_a_running_step_to_now():
    from datetime import UTC, datetime, timedelta

    from dashboard.htmlviews import timeline_html
    from dashboard.models import StepRow

    t0 = datetime(2026, 1, 1, tzinfo=UTC)

    def row(step, variant, start_s, ms, state="COMPLETED"):
        return StepRow(
            step=step,
            variant=variant,
            state=state,
            attempts=1,
            started_at=t0 + timedelta(seconds=start_s),
            duration_ms=ms,
            provider="x",
        )

    steps = (
        row("download", 0, 0, 1000.0),
        row("composite", 1, 1, 1000.0),
        row("composite", 2, 1, None, "RUNNING"),
    )
    html = timeline_html(steps, now=t0 + timedelta(seconds=4))
    assert "left:0.00%;width:25.00%" in html  # download: 0–1 s of 4 s
    assert "left:25.00%;width:25.00%" in html  # composite #1: 1–2 s
    assert "left:25.00%;width:75.00%" in html  # composite #2 still running at 4 s
    assert "4.0 s after the first step started" in html
    assert timeline_html(()) is None


def test_a_held_job_waits_at_the_publish_stage_and_a_rejected_one_fails_there() -> None:
    held = pipeline_stages("NEEDS_REVIEW")
    assert [s.state for s in held] == ["done"] * 6 + ["current"]
    rejected = pipeline_stages("REJECTED")
    assert [s.state for s in rejected] == ["done"] * 6 + ["failed"]

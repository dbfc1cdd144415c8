"""Job page through AppTest: DONE, FAILED and running jobs, tabs, missing files, deep links."""

from __future__ import annotations

import uuid

import pytest
import streamlit as st

from core import keys
from core.db import session_scope
from core.tables import Job
from dashboard.gallery import FULL_SIZE_KEY
from tests.dashboard.rendered import shown


def _html(at) -> str:
    return " ".join(node.value for node in at.get("html"))


def _images(at) -> int:
    return sum(len(node.value) for node in at.get("image"))


@pytest.mark.parametrize("route", ["root", "job-page"])
def test_deep_link_opens_the_job(app, done_job, route):
    if route == "root":
        at = app(job=str(done_job))  # /?job=<id> switches to the job page
    else:
        at = app()
        at.switch_page("app_pages/job_detail.py")
        at.query_params["job"] = str(done_job)
        at.run()
    assert any("LAMP-1 · default" in shown(md.value) for md in at.markdown)


def test_done_job_progress_tabs_assets_timing_and_cost(app, done_job, settings, store, monkeypatch):
    # Named here: a Prefect test server started earlier in this process exports its own URL.
    from core import settings as settings_module

    monkeypatch.setenv("PREFECT_API_URL", "http://prefect.example:4200/api")
    settings_module.get_settings.cache_clear()
    at = app(job=str(done_job))
    original = next(key for key in store.list("originals/")).rsplit("/", 1)[-1]
    assert "Step 7 of 7 (100%)" in _html(at)
    assert [tab.label for tab in at.tabs] == [
        "Original",
        "Cutout & Mask",
        "Backgrounds",
        "Composites",
        "Derivatives",
    ]
    assert _images(at) == 1, "only the open tab (Original) loads its image"
    checklist = next(c.value for c in at.caption if c.value.startswith("Assets:"))
    assert "Derivatives (18) ✓" in checklist and "Manifest ✓" in checklist
    # Assets card: all 26 files listed, a ZIP of all of them, and any one file on its own.
    assert any("Assets · 26 files" in md.value for md in at.markdown)
    html = _html(at)
    keys = list(store.list(""))
    assert len(keys) == 26 and all(f">{key}</td>" in html for key in keys)
    assert html.count(">✓</td>") == 26
    labels = [shown(b.label) for b in at.download_button]
    assert labels == ["Download all (.zip)", f"Download {original}"]
    options = at.selectbox(key="assets-file").options
    assert len(options) == 26 and "original · " + original in options
    labels = [
        "download",
        "remove_background",
        "generate_backgrounds",
        "composite #1",
        "composite #2",
    ]
    labels += ["derivatives #1", "derivatives #2", "manifest", "publish"]
    rows = [
        html.index(
            f'<td style="padding:4px 8px;border-bottom:1px solid #eee;text-align:left">{label}</td>'
        )
        for label in labels
    ]
    assert rows == sorted(rows), "step table in pipeline order"
    assert ">3.4 s</td>" in html and ">$0.0125</td>" in html
    assert {metric.label: metric.value for metric in at.metric}["Cost"] == "$0.0125"
    assert 'title="composite #2: COMPLETED, 545 ms, attempt 1, pillow"' in html, "per-step timeline"
    with session_scope(settings.database_url) as session:
        flow_run_id = session.get(Job, done_job).flow_run_id
    assert at.link_button[0].proto.url == f"http://prefect.example:4200/runs/flow-run/{flow_run_id}"
    # The source URL is shown redacted: its token never reaches the page.
    assert all("secret" not in caption.value for caption in at.caption)


@pytest.mark.parametrize(
    ("tab", "images"),
    [("Cutout & Mask", 2), ("Backgrounds", 2), ("Composites", 2), ("Derivatives", 18)],
)
def test_each_tab_loads_its_images(app, done_job, tab, images):
    at = app(job=str(done_job), tab=tab)
    assert _images(at) == images
    assert not at.warning


def test_derivative_grid_shows_pixel_size_bytes_and_avif_as_a_browser_format(app, done_job):
    at = app(job=str(done_job), tab="Derivatives")
    captions = [caption for node in at.get("image") for caption in node.captions]
    assert sum("240×240" in caption for caption in captions) == 6  # hero × 3 formats × 2
    assert sum("vs JPEG" in caption for caption in captions) == 12
    urls = [url for node in at.get("image") for url in node.value]
    assert all(url.endswith((".jpg", ".png")) for url in urls), urls


def test_full_size_dialog_converts_avif(app, done_job):
    at = app(job=str(done_job), tab="Derivatives")
    avif_button = next(b for b in at.button if b.key and b.key.endswith("1_hero.avif"))
    avif_button.click().run()
    assert at.session_state[FULL_SIZE_KEY].endswith("1_hero.avif")
    assert any("decoded from the stored AVIF" in caption.value for caption in at.caption)
    full = [node for node in at.get("image") if node.value[0].endswith(".png")]
    assert full, "the full-size AVIF is served as PNG"


def test_failed_job_marks_the_stage_red_with_the_error(app, failed_job):
    at = app(job=str(failed_job), tab="Derivatives")
    assert "Step 4 of 7: failed" in _html(at)
    assert "#fce8e6" in _html(at), "the failed stage is drawn red"
    error = shown(at.error[0].value)
    assert "composite · ProviderUnavailable" in error and "segmenter timed out" in error
    assert "the job failed before making them" in at.warning[0].value


def test_running_job_shows_progress_and_fills_tabs_as_it_goes(app, running_job):
    at = app(job=str(running_job), tab="Backgrounds")
    assert "Step 3 of 7 (43%): BACKGROUND_READY" in _html(at)
    assert _images(at) == 2
    rerun = at.button(key="rerun-open")
    assert rerun.disabled
    at = app(job=str(running_job), tab="Composites")
    assert "No composites yet: the job is at step 3 of 7" in at.info[0].value


def test_missing_file_is_a_placeholder_not_a_crash(app, done_job, store, settings):
    with session_scope(settings.database_url) as session:
        job = session.get(Job, done_job)
        missing = keys.derivative_key(job.theme, job.sku, job.sha256, 1, "hero", "webp")
    store.delete(missing)
    at = app(job=str(done_job), tab="Derivatives")
    assert _images(at) == 17
    assert any(f"missing from the store: {missing}" in shown(w.value) for w in at.warning)
    assert f">{missing}</td><td" in _html(at) and _html(at).count(">missing</td>") == 1
    options = at.selectbox(key="assets-file").options
    assert len(options) == 25 and "derivative · 1_hero.webp" not in options, "no download for it"


def test_unknown_and_malformed_job_ids(app, done_job):
    at = app(job=str(uuid.uuid4()))
    assert "No job" in at.warning[0].value
    at = app(job="not-a-uuid")
    assert "is not a job id" in at.error[0].value


def test_job_page_without_id_lists_recent_jobs(app, done_job, failed_job):
    at = app()
    at.switch_page("app_pages/job_detail.py").run()
    labels = [shown(link.proto.label) for link in at.get("page_link")]
    assert any(label.startswith("MUG-7 · white · FAILED") for label in labels)
    assert any(label.startswith("LAMP-1 · default · DONE") for label in labels)


def test_a_running_job_without_progress_is_flagged_and_can_be_rerun(
    app, running_job, settings, monkeypatch
):
    from datetime import UTC, datetime, timedelta

    from core import settings as settings_module

    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:4200/api")
    settings_module.get_settings.cache_clear()
    assert app(job=str(running_job)).button(key="rerun-open").disabled, (
        "fresh progress: still running"
    )
    with session_scope(settings.database_url) as session:
        session.get(Job, running_job).updated_at = datetime.now(UTC) - timedelta(minutes=40)
    st.cache_data.clear()  # the page caches the job for 2 s
    at = app(job=str(running_job))
    assert any("No progress since 40 min ago" in warning.value for warning in at.warning)
    assert not at.button(key="rerun-open").disabled

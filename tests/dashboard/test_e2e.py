"""End to end: the real app under ``streamlit run`` on a free port, driven by headless Chromium.

Opens the overview, clicks into a DONE job, switches through every image tab and checks that
each image really loaded in the browser (``naturalWidth > 0``); signs in, approves a job the
quality gate held and sees it published by a (stand-in) worker. Screenshots go to
``test-artifacts/dashboard/``; with ``UPDATE_README_SCREENSHOT=1`` the job page one also
replaces ``docs/images/job-page.png`` (the README's picture).
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from PIL import Image

from core.settings import Settings, get_settings
from core.storage import ObjectStore
from core.tables import JobStatus
from core.urls import redact_url
from dashboard.gallery import TABS
from dashboard.launch import streamlit_argv, streamlit_env
from tests.dashboard import hostile
from tests.dashboard.seed import Sizes, seed_job, stored_job
from tests.helpers.deployed import deploy, stand_in_worker
from tests.helpers.http_server import Reply, Script, serve
from tests.helpers.images import jpeg_bytes, product_photo
from tests.helpers.ports import free_port

CHROMIUM = Path("/usr/bin/chromium")
# Without the background-networking switches Chromium dials out at start and, on a machine
# without internet access, its connections are refused; the others keep it quiet and headless.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "dashboard"
README_SHOT = ROOT / "docs" / "images" / "job-page.png"
# Each tab's images, told apart by their alt text (the stored file's name): two tabs with two
# images each must not pass on the previous tab's images while the next one is still drawing.
IMAGES_PER_TAB = {
    "Original": (1, r"^[0-9a-f]{64}\.jpg$"),
    "Cutout & Mask": (2, r"^[0-9a-f]{64}\.png$"),
    "Backgrounds": (2, r"^[0-9a-f]{64}_[12]\.jpg$"),
    "Composites": (2, r"_1x1_[12]_master\.jpg$"),
    "Derivatives": (18, r"^[12]_(hero|pdp|thumb)\.(jpg|webp|avif)$"),
}
TIMEOUT_MS = 60_000
# What a value from data must never become on a page: links and images to its URLs, math,
# icons, emoji, the Streamlit logo, bold text.
MARKUP_FROM_DATA = (
    'a[href*="evil.test"]',
    'a[href^="mailto:"]',
    'img[src*="127.0.0.1:9"]',
    'img[alt="Streamlit logo"]',
    ".katex",
    'span[role="img"][aria-label="warning icon"]',
    'span[role="img"][aria-label="home icon"]',
    "strong:has-text('EVIL')",
    "strong:has-text('bold')",
)

pytestmark = [
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason="needs Debian's chromium at /usr/bin/chromium (`make browser` installs it; `make test` runs that)",
    ),
    pytest.mark.slow,
    pytest.mark.xdist_group("browser"),
    pytest.mark.timeout(300),  # streamlit start-up (up to 90 s) and a real browser
]


@pytest.fixture
def done_job(settings: Settings, store: ObjectStore) -> uuid.UUID:
    """The DONE job made from the bundled desk-lamp photo, so the screenshots look like a real run."""
    sizes = Sizes(
        photo=(554, 512), master=800, derivatives=(("hero", 600), ("pdp", 400), ("thumb", 100))
    )
    return seed_job(settings.database_url, store, sku="LAMP-1", sizes=sizes, sample_photo=True)


@pytest.fixture
def server(settings: Settings, tmp_path: Path) -> Iterator[str]:
    """``streamlit run`` exactly as ``packshot dashboard`` starts it, on a free port.

    The dashboard reads the database per page view, so the jobs a test asks for are seeded
    before its browser opens a page, whichever fixture runs first.
    """
    port = free_port()
    log = (tmp_path / "streamlit.log").open("w")
    process = subprocess.Popen(
        streamlit_argv(settings, port=port),
        env=streamlit_env(settings, os.environ),
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=tmp_path,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            if process.poll() is not None:
                pytest.fail(
                    f"streamlit exited with {process.returncode}:\n{(tmp_path / 'streamlit.log').read_text()}"
                )
            try:
                if httpx.get(f"{base}/_stcore/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("streamlit did not answer /_stcore/health within 90 s")
            time.sleep(0.2)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def _wait_for_images(page, count: int, alt: str) -> None:
    """Until exactly ``count`` images, all named like ``alt``, show and decoded in the browser."""
    page.wait_for_function(
        """([count, alt]) => {
            const pattern = new RegExp(alt);
            const images = [...document.querySelectorAll('[data-testid="stImage"] img')];
            return images.length === count && images.every(
                i => pattern.test(i.alt) && i.complete && i.naturalWidth > 0
            );
        }""",
        arg=[count, alt],
        timeout=TIMEOUT_MS,
    )


def _small_png(shot: bytes) -> bytes:
    """The screenshot as a 256-colour PNG: the README picture stays well under 300 KB."""
    image = Image.open(io.BytesIO(shot)).convert("RGB")
    buffer = io.BytesIO()
    image.quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(buffer, "PNG", optimize=True)
    return buffer.getvalue()


def test_overview_to_done_job_through_every_tab(
    server: str, done_job: uuid.UUID, failed_job: uuid.UUID, running_job: uuid.UUID
) -> None:
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 960})
            page.set_default_timeout(TIMEOUT_MS)
            failed_requests: list[str] = []
            page.on("requestfailed", lambda request: failed_requests.append(request.url))

            page.goto(server, wait_until="domcontentloaded")
            page.get_by_text("Jobs by status").wait_for()
            for sku in ("LAMP-1", "MUG-7", "SHIRT-3"):
                page.get_by_role("link", name=sku, exact=True).wait_for()
            page.screenshot(path=ARTIFACTS / "overview.png")

            page.get_by_role("link", name="LAMP-1", exact=True).click()
            page.wait_for_url(f"**/job?job={done_job}**")
            page.get_by_text("Step 7 of 7 (100%)").wait_for()
            assert [tab.text_content() for tab in page.get_by_role("tab").all()] == list(TABS)

            shots: dict[str, bytes] = {}
            for tab in TABS:
                page.get_by_role("tab", name=tab, exact=True).click()
                _wait_for_images(page, *IMAGES_PER_TAB[tab])
                widths = page.eval_on_selector_all(
                    '[data-testid="stImage"] img', "images => images.map(i => i.naturalWidth)"
                )
                assert all(width > 0 for width in widths), (tab, widths)
                shots[tab] = page.screenshot(path=ARTIFACTS / f"job-{tab.split()[0].lower()}.png")
            assert "tab=Derivatives" in page.url, "the open tab is part of the link"
            assert not failed_requests, failed_requests
        finally:
            browser.close()

    picture = _small_png(shots["Composites"])
    (ARTIFACTS / "job-page.png").write_bytes(picture)
    assert len(picture) < 300_000
    if os.environ.get("UPDATE_README_SCREENSHOT") == "1":
        README_SHOT.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ARTIFACTS / "job-page.png", README_SHOT)


def test_values_from_data_show_as_text_in_the_browser(server: str, hostile_job: uuid.UUID) -> None:
    """The job page, the job table and the failures list, as Streamlit's own renderer draws them."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 960})
            page.set_default_timeout(TIMEOUT_MS)
            requested: list[str] = []
            page.on("request", lambda request: requested.append(request.url))

            page.goto(f"{server}/job?job={hostile_job}", wait_until="domcontentloaded")
            page.get_by_text("Step 4 of 7: failed").wait_for()
            page.locator('[data-testid="stAlertContentError"]').wait_for()
            # The facts line is Markdown with code spans, drawn when its renderer has loaded,
            # which can be after the elements above on a busy machine.
            page.locator('[data-testid="stCaptionContainer"]', has_text="· started").wait_for()
            text = _main_text(page)
            assert f"{hostile.SKU} · default" in text
            assert f"source {redact_url(hostile.SOURCE)} · started" in text
            lines = [line.strip() for line in hostile.ERROR.splitlines() if line.strip()]
            assert all(line in text for line in lines), (lines, text)

            page.goto(server, wait_until="domcontentloaded")
            page.get_by_role("link", name=hostile.SKU, exact=True).wait_for()
            page.get_by_text("Jobs by status").wait_for()
            overview = _main_text(page)
            assert overview.count(hostile.FIRST_LINE) == 2, "failures list and job table"
        finally:
            browser.close()
    for page_text in (text, overview):
        assert "😄" not in page_text and "→" not in page_text
    assert not [url for url in requested if "127.0.0.1:9/" in url or "evil.test" in url]


def _main_text(page) -> str:
    """The page's main area as text, once no element made from data is markup."""
    for selector in MARKUP_FROM_DATA:
        assert page.locator(selector).count() == 0, selector
    return page.locator('[data-testid="stMain"]').inner_text()


PHOTO = jpeg_bytes(product_photo())
PASSWORD = "an-e2e-dashboard-password"


@pytest.fixture
def held_job(prefect_server: str, monkeypatch: pytest.MonkeyPatch) -> uuid.UUID:
    """A job the real quality gate held: the drawn photo with the product share it must reach
    raised to half the frame, as in tests/flows/test_review.py.

    Also sets the dashboard password before the ``server`` fixture starts Streamlit.
    """
    from flows.process_image import process_image

    monkeypatch.setenv("PACKSHOT_REVIEW", "auto")
    monkeypatch.setenv("PACKSHOT_QUALITY_FOREGROUND_MIN", "0.5")
    monkeypatch.setenv("PACKSHOT_DASHBOARD_PASSWORD", PASSWORD)
    get_settings.cache_clear()
    script = Script()
    script.add("/media/held.jpg", Reply(200, PHOTO, {"content-type": "image/jpeg"}))
    with serve(script) as base:
        result = process_image(sku="HELD-1", image_url=f"{base}/media/held.jpg")
    assert result["status"] == JobStatus.NEEDS_REVIEW
    return uuid.UUID(str(result["jobId"]))


@pytest.mark.timeout(480)  # a Prefect test server, the flow twice, streamlit and a browser
def test_sign_in_and_approve_a_held_job_until_it_is_published(
    held_job: uuid.UUID, server: str
) -> None:
    from playwright.sync_api import sync_playwright

    from flows.process_image import process_image
    from flows.trigger import PROCESS_IMAGE_DEPLOYMENT

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    deployment = deploy(PROCESS_IMAGE_DEPLOYMENT, "flows/process_image.py:process_image")
    with sync_playwright() as playwright, stand_in_worker(deployment, process_image) as worker:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1100})
            page.set_default_timeout(TIMEOUT_MS)
            page.goto(server, wait_until="domcontentloaded")
            page.get_by_role("link", name="1 waiting for review").click()
            page.wait_for_url("**/review**")
            _wait_for_images(page, 5, r".")  # original, cut-out, mask over it, 2 composites
            # A disabled button with a tooltip is drawn twice; the role finds the visible one.
            approve = page.locator(f".st-key-review-approve-{held_job}").get_by_role(
                "button", name="Approve", exact=True
            )
            approve.wait_for()  # drawn after the images, on a busy machine a moment later
            assert approve.count() == 1 and approve.is_disabled(), "nobody signed in yet"
            page.get_by_label("Your name").fill("e2e-operator")
            page.get_by_label("Dashboard password").fill(PASSWORD)
            page.locator(".st-key-sign-in").get_by_role("button", name="Sign in").click()
            page.get_by_text("Signed in as").wait_for()
            page.screenshot(path=ARTIFACTS / "review.png")
            approve.click()
            page.get_by_text("Approved; publishing in flow run").wait_for()
            page.get_by_text("No job is waiting for review.").wait_for()
            message = page.locator('[data-testid="stAlertContentSuccess"]').first.inner_text()
            run_id = uuid.UUID(message.split("flow run ")[1].split()[0])
            worker.wait(run_id, timeout=180)
        finally:
            browser.close()
    job = stored_job(get_settings().database_url, held_job)
    assert (job.status, job.review_decision, job.review_by) == (
        JobStatus.DONE,
        "approved",
        "e2e-operator",
    )
    assert job.review_at is not None and job.flow_run_id == str(run_id)

"""The job page on what a real ``process_image`` run stored: no seed data, nothing hand-kept.

The flow runs on Prefect's test server against a loopback photo server, with the test's
SQLite database and local store; the expectations are read from the stored files themselves.
"""

from __future__ import annotations

import hashlib
import io
import re
import uuid
from collections import Counter
from collections.abc import Iterator

import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from core.storage import ObjectStore
from dashboard.fmt import human_bytes
from flows.process_image import process_image
from tests.dashboard.rendered import shown
from tests.helpers.http_server import Reply, Script, serve
from tests.helpers.images import jpeg_bytes, product_photo

pytestmark = [pytest.mark.xdist_group("prefect"), pytest.mark.slow]

PHOTO = jpeg_bytes(product_photo())
SHA = hashlib.sha256(PHOTO).hexdigest()
# The pipeline's steps, one row per variant of the mapped ones (default theme: two variants).
STEP_LABELS = [
    "download",
    "remove_background",
    "generate_backgrounds",
    "composite #1",
    "composite #2",
    "derivatives #1",
    "derivatives #2",
    "quality",
    "manifest",
    "publish",
]


@pytest.fixture
def real_job(prefect_server: str, store: ObjectStore) -> Iterator[uuid.UUID]:
    """One photo through the real flow, from a loopback server."""
    script = Script()
    script.add("/media/photo.jpg", Reply(200, PHOTO, {"content-type": "image/jpeg"}))
    with serve(script) as base:
        result = process_image(sku="REAL-1", image_url=f"{base}/media/photo.jpg", sha256=SHA)
    assert result["status"] == "DONE"
    yield uuid.UUID(str(result["jobId"]))


def _stored(store: ObjectStore, prefix: str = "") -> dict[str, tuple[str, int]]:
    """Each stored file under ``prefix``: its pixel size as the page writes it, and its bytes."""
    files = {}
    for key in store.list(prefix):
        data = store.get(key)
        pixels = ""
        if not key.endswith(".json"):
            width, height = Image.open(io.BytesIO(data)).size
            pixels = f"{width}×{height}"
        files[key] = (pixels, len(data))
    return files


def _html(at: AppTest) -> str:
    return " ".join(node.value for node in at.get("html"))


def _captions(at: AppTest) -> list[str]:
    return [shown(caption) for node in at.get("image") for caption in node.captions]


def test_job_page_shows_what_a_real_run_stored(app, real_job, store):
    """One run (about 20 s) serves the whole page: summary, assets, steps, then two tabs."""
    files = _stored(store)
    assert len(files) == 26, sorted(files)  # original, cutout, mask, 2 + 2, 18, manifest
    at = app(job=str(real_job))
    _assets_and_steps(at, files)
    _composites(app(job=str(real_job), tab="Composites"), files)
    _derivatives(app(job=str(real_job), tab="Derivatives"), files)


def _assets_and_steps(at: AppTest, files: dict[str, tuple[str, int]]) -> None:
    html = _html(at)
    assert "Step 7 of 7 (100%)" in html
    cell = r"</td><td[^>]*>"
    for key, (pixels, size) in files.items():
        row = re.escape(f">{key}") + cell + re.escape(pixels) + cell + re.escape(human_bytes(size))
        assert re.search(row, html), f"assets card row of {key}"
    assert html.count(">✓</td>") == 26, "every file found in the store"
    assert any(shown(md.value).startswith("Assets · 26 files") for md in at.markdown)
    for label in STEP_LABELS:
        assert re.search(re.escape(f">{label}") + cell + "COMPLETED</td>", html), label
    assert html.count("COMPLETED</td>") == len(STEP_LABELS)
    assert {metric.label: metric.value for metric in at.metric}["Attempts"] == str(len(STEP_LABELS))
    checklist = next(shown(c.value) for c in at.caption if c.value.startswith("Assets"))
    assert "Backgrounds (2) ✓ · Composites (2) ✓ · Derivatives (18) ✓ · Manifest ✓" in checklist
    original = f"originals/REAL-1/{SHA}.jpg"
    pixels, size = files[original]
    facts = [shown(md.value) for md in at.markdown]
    assert f"Stored {original}" in facts and f"SHA-256 {SHA}" in facts
    assert f"Format jpeg · {pixels}" in facts
    assert _captions(at) == [f"Original · {pixels} · {human_bytes(size)}"]


def _composites(at: AppTest, files: dict[str, tuple[str, int]]) -> None:
    masters = sorted(key for key in files if key.startswith("composites/"))
    expected = [
        f"Composite {n} · {files[key][0]} · {human_bytes(files[key][1])}"
        for n, key in enumerate(masters, start=1)
    ]
    assert len(expected) == 2 and _captions(at) == expected


def _derivatives(at: AppTest, files: dict[str, tuple[str, int]]) -> None:
    derivatives = [files[key] for key in files if key.startswith("derivatives/")]
    captions = _captions(at)
    assert len(derivatives) == 18 and len(captions) == 18
    # Each tile: pixel size and bytes of its file, then (except JPEG) the change against JPEG.
    shown_files = Counter(caption.split(" (")[0] for caption in captions)
    stored_files = Counter(f"{pixels} · {human_bytes(size)}" for pixels, size in derivatives)
    assert shown_files == stored_files
    assert sum("vs JPEG" in caption for caption in captions) == 12
    urls = [url for node in at.get("image") for url in node.value]
    assert all(url.endswith((".jpg", ".png")) for url in urls), "AVIF and WebP shown as JPEG/PNG"

"""Which URL Freepik fetches the photo from; other formats and large files are converted first."""

from __future__ import annotations

import hashlib
import io
from urllib.parse import parse_qs

import pytest
import respx
from PIL import Image

from core.providers.freepik_source import (
    MAX_INPUT_BYTES,
    fetchable_url,
    jpeg_within,
    staging_key,
)
from core.schemas import ImageJobSpec
from core.storage import MemoryStore
from imaging.codec import sniff
from tasks import _runtime, jobstate
from tasks.remove_background import remove_background
from tests.helpers.freepik import cutout_png, mock_remove_background, use_freepik
from tests.helpers.images import encoded, jpeg_bytes, product_photo

PHOTO = product_photo()
JPEG = jpeg_bytes(PHOTO)
PUBLIC = "https://cdn.3jms.example/media/abc.jpg"
LOOPBACK = "http://127.0.0.1:8080/media/abc.jpg"


class PresigningStore(MemoryStore):
    """A memory store that hands out https URLs, as S3 presigning does."""

    def url(self, key: str, *, expires_in: int = 3600) -> str:
        return f"https://bucket.s3.example/{key}?X-Amz-Expires={expires_in}&X-Amz-Signature=sig"


def _stored(store: MemoryStore, key: str, data: bytes) -> str:
    store.put(key, data, content_type="image/jpeg")
    return key


@pytest.mark.parametrize(
    ("store", "source", "expected"),
    [
        (MemoryStore(), PUBLIC, PUBLIC),  # a public source is used as it is
        (PresigningStore(), PUBLIC, PUBLIC),
        (PresigningStore(), LOOPBACK, "https://bucket.s3.example/originals/S/abc.jpg"),
        (
            PresigningStore(),
            "https://localhost/a.jpg",
            "https://bucket.s3.example/originals/S/abc.jpg",
        ),
        (MemoryStore(), LOOPBACK, LOOPBACK),  # nothing better: Freepik will say it cannot reach it
        (MemoryStore(), "/photos/abc.jpg", None),  # a local file on a local store: no URL at all
    ],
)
def test_a_jpeg_within_limits_is_fetched_from_the_best_url(store, source, expected) -> None:
    key = _stored(store, "originals/S/abc.jpg", JPEG)
    url = fetchable_url(
        store,
        original_key=key,
        source_url=source,
        image=PHOTO,
        converted_key=staging_key("S", "abc"),
    )
    assert (url.split("?")[0] if url else url) == expected
    assert not store.exists(staging_key("S", "abc"))


def test_another_format_is_converted_and_presigned() -> None:
    store = PresigningStore()
    key = _stored(store, "originals/S/abc.webp", encoded(PHOTO, "WEBP"))
    url = fetchable_url(
        store,
        original_key=key,
        source_url=PUBLIC,
        image=PHOTO,
        converted_key=staging_key("S", "abc"),
    )
    assert url is not None and url.startswith(
        "https://bucket.s3.example/staging/freepik/S/abc.jpg?"
    )
    assert "X-Amz-Expires=3600" in url
    copy = store.get(staging_key("S", "abc"))
    assert sniff(copy) == "jpeg" and Image.open(io.BytesIO(copy)).size == PHOTO.size


def test_a_file_over_20_mb_is_converted() -> None:
    store = PresigningStore()
    key = _stored(store, "originals/S/abc.jpg", b"\xff\xd8\xff" + bytes(MAX_INPUT_BYTES))
    url = fetchable_url(
        store,
        original_key=key,
        source_url=PUBLIC,
        image=PHOTO,
        converted_key=staging_key("S", "abc"),
    )
    assert url is not None and "/staging/freepik/" in url
    assert len(store.get(staging_key("S", "abc"))) <= MAX_INPUT_BYTES


def test_another_format_on_a_local_store_has_no_url() -> None:
    store = MemoryStore()
    key = _stored(store, "originals/S/abc.webp", encoded(PHOTO, "WEBP"))
    url = fetchable_url(
        store,
        original_key=key,
        source_url=PUBLIC,
        image=PHOTO,
        converted_key=staging_key("S", "abc"),
    )
    assert url is None and not store.exists(staging_key("S", "abc"))


def test_jpeg_within_caps_pixels_and_bytes() -> None:
    large = Image.new("RGB", (5600, 4600), (200, 190, 180))  # 25.8 MP
    capped = Image.open(io.BytesIO(jpeg_within(large)))
    assert (
        capped.width * capped.height <= 25_000_000
        and capped.width / capped.height == pytest.approx(5600 / 4600, rel=0.01)
    )
    small = jpeg_within(PHOTO, max_bytes=3_000)
    assert len(small) <= 3_000 and Image.open(io.BytesIO(small)).width < PHOTO.width


def test_the_step_sends_the_converted_copy(monkeypatch) -> None:
    use_freepik(monkeypatch)
    store = PresigningStore()
    _runtime.use_store(store)
    webp = encoded(PHOTO, "WEBP", lossless=True)
    sha = hashlib.sha256(webp).hexdigest()
    spec = ImageJobSpec(sku="SKU-W", image_url=PUBLIC.replace(".jpg", ".webp"), sha256=sha)
    job = jobstate.open_job(spec, flow_run_id=None)
    key = f"originals/SKU-W/{sha}.webp"
    store.put(key, webp, content_type="image/webp")
    with respx.mock(assert_all_called=False) as router:
        post, _ = mock_remove_background(router, cutout_png(PHOTO.size))
        remove_background.fn(job, key)
    sent = parse_qs(post.calls.last.request.content.decode())["image_url"][0]
    assert sent.startswith(f"https://bucket.s3.example/staging/freepik/SKU-W/{sha}.jpg?")
    assert store.exists(f"cutouts/SKU-W/{sha}.png")

"""Every flow test runs against the session's Prefect test server (``prefect_server``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.helpers.http_server import Reply, Script, serve
from tests.helpers.images import jpeg_bytes, product_photo

# The drawn test photo, as the flow tests' loopback CDN serves it.
PHOTO = jpeg_bytes(product_photo())


@pytest.fixture(autouse=True)
def _server(prefect_server: str) -> str:
    return prefect_server


@pytest.fixture
def photo_url() -> Iterator[str]:
    """The URL of ``PHOTO`` on a loopback CDN, for the length of the test."""
    script = Script()
    script.add("/media/photo.jpg", Reply(200, PHOTO, {"content-type": "image/jpeg"}))
    with serve(script) as base:
        yield f"{base}/media/photo.jpg"

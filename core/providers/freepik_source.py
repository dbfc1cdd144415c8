"""Which URL Freepik should fetch a photo from, converting the photo first when it must.

Freepik's remove-background takes only a URL of a JPG or PNG of at most 20 MB. In order of
preference: the original source URL when it is public; a presigned URL of the stored
original (S3); the source URL even if private (the demo's loopback server; Freepik cannot
reach it, the call fails and a fallback segmenter takes over). Any other format, or a larger
file, is re-encoded here as a JPEG of at most 20 MB and 25 MP, stored under
``staging/freepik/{sku}/{sha}.jpg`` and presigned; a store without http(s) URLs (the local
directory) leaves ``None``, which the remover turns into a clear error.
"""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from PIL import Image

from core.urls import is_public_address
from imaging.codec import encode

if TYPE_CHECKING:
    from core.storage import ObjectStore

__all__ = ["MAX_INPUT_BYTES", "fetchable_url", "jpeg_within", "staging_key"]

MAX_INPUT_BYTES = 20_000_000
MAX_INPUT_PIXELS = 25_000_000
_ACCEPTED_EXTENSIONS = ("jpg", "jpeg", "png")
URL_LIFETIME_S = 3600  # Freepik fetches during the call; an hour leaves room for retries


def staging_key(sku: str, sha256: str) -> str:
    """``staging/freepik/{sku}/{sha}.jpg``: the converted copy handed to Freepik."""
    return f"staging/freepik/{sku}/{sha256}.jpg"


def _is_http(url: str | None) -> bool:
    return bool(url) and urlsplit(url or "").scheme in ("http", "https")


def _is_public_http(url: str | None) -> bool:
    if not _is_http(url):
        return False
    host = (urlsplit(url or "").hostname or "").lower()
    if host == "localhost" or host.endswith((".localhost", ".local", ".internal")):
        return False
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return True  # a name: whether it is public is the provider's to find out
    return is_public_address(host)


def _presigned(store: ObjectStore, key: str) -> str | None:
    url = store.url(key, expires_in=URL_LIFETIME_S)
    return url if _is_http(url) else None


def jpeg_within(image: Image.Image, *, max_bytes: int = MAX_INPUT_BYTES) -> bytes:
    """``image`` as a JPEG of at most ``max_bytes`` and 25 MP, downscaled as needed."""
    rgb = image.convert("RGB")
    pixels = rgb.width * rgb.height
    if pixels > MAX_INPUT_PIXELS:
        scale = (MAX_INPUT_PIXELS / pixels) ** 0.5
        rgb = rgb.resize(
            (max(1, int(rgb.width * scale)), max(1, int(rgb.height * scale))),
            Image.Resampling.LANCZOS,
        )
    data = encode(rgb, "jpeg", quality=92)
    while len(data) > max_bytes:
        scale = 0.9 * (max_bytes / len(data)) ** 0.5
        rgb = rgb.resize(
            (max(1, int(rgb.width * scale)), max(1, int(rgb.height * scale))),
            Image.Resampling.LANCZOS,
        )
        data = encode(rgb, "jpeg", quality=92)
    return data


def fetchable_url(
    store: ObjectStore,
    *,
    original_key: str,
    source_url: str | None,
    image: Image.Image,
    converted_key: str,
) -> str | None:
    """A URL Freepik can fetch the photo from, or ``None`` when there is none.

    Args:
        store: the object store holding the original.
        original_key: the stored original (its extension names its format).
        source_url: where the photo came from (http(s) URL or a local path).
        image: the decoded photo, re-encoded when the original does not qualify.
        converted_key: where a re-encoded copy goes (see :func:`staging_key`).
    """
    head = store.head(original_key)
    extension = original_key.rsplit(".", 1)[-1].lower()
    if extension in _ACCEPTED_EXTENSIONS and head is not None and head.size <= MAX_INPUT_BYTES:
        if _is_public_http(source_url):
            return source_url
        return _presigned(store, original_key) or (source_url if _is_http(source_url) else None)
    if not _is_http(store.url(converted_key)):
        return None  # nowhere to publish a converted copy: do not bother encoding it
    store.put(converted_key, jpeg_within(image), content_type="image/jpeg")
    return _presigned(store, converted_key)

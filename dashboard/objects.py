"""Reading the object store for the dashboard: cached previews, download bytes, presigned links.

Previews are cached by (store, key, sha256): keys are content-addressed and the sha256 changes
when a forced re-run rewrites an object, so a cached preview is never stale. Missing objects and
store failures are never cached, so a file that appears later (a running job) shows up at once.
"""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st

from core.errors import ConfigurationError, StorageError
from core.settings import Settings, get_settings
from core.storage import ObjectNotFound, ObjectStore, new_store
from dashboard.images import Preview, PreviewError, coverage, mask_overlay, preview

__all__ = [
    "Availability",
    "StoreRef",
    "Unavailable",
    "availability",
    "download_link",
    "full_view",
    "mask_coverage",
    "overlay",
    "read_object",
    "store_ref",
    "thumbnail",
]

THUMB_SIDE = 360
# Presigned links outlive the cache entry that holds them by a wide margin.
LINK_EXPIRES_S = 3600
LINK_TTL_S = 600


@dataclass(frozen=True)
class StoreRef:
    """Which store to open: hashable, so cached functions key on it."""

    url: str
    endpoint_url: str | None = None
    region: str | None = None
    credentials_block: str | None = None


class Unavailable(Exception):
    """An object cannot be shown; the message says why in words fit for the page."""


def store_ref(settings: Settings | None = None) -> StoreRef:
    """The configured object store."""
    settings = settings or get_settings()
    return StoreRef(
        url=settings.store_url,
        endpoint_url=settings.s3_endpoint_url,
        region=settings.s3_region,
        credentials_block=settings.aws_credentials_block,
    )


@st.cache_resource(show_spinner=False)
def _store(ref: StoreRef) -> ObjectStore:
    # One client per store and process: S3 clients are expensive to build and thread-safe.
    return new_store(
        ref.url,
        endpoint_url=ref.endpoint_url,
        region=ref.region,
        credentials_block=ref.credentials_block,
        connect_timeout=3,
        read_timeout=10,
        max_attempts=2,
    )


def read_object(ref: StoreRef, key: str) -> bytes:
    """The object's bytes.

    Raises:
        Unavailable: the object is missing or the store cannot be read.
    """
    try:
        return _store(ref).get(key)
    except ObjectNotFound as exc:
        raise Unavailable(f"missing from the store: {key}") from exc
    except (StorageError, ConfigurationError) as exc:
        raise Unavailable(f"object store unavailable: {exc}") from exc


@st.cache_data(ttl=3600, max_entries=2048, show_spinner=False)
def thumbnail(ref: StoreRef, key: str, version: str | None, max_side: int = THUMB_SIDE) -> Preview:
    """A small JPEG/PNG preview of the object (transparency on a checkerboard).

    Args:
        ref: the store.
        key: the object key.
        version: the asset's sha256, so a rewritten object gets a new cache entry.
        max_side: longest side in pixels.

    Raises:
        Unavailable: missing, unreadable or not an image.
    """
    try:
        return preview(read_object(ref, key), max_side=max_side)
    except PreviewError as exc:
        raise Unavailable(str(exc)) from exc


@st.cache_data(ttl=600, max_entries=32, show_spinner=False)
def full_view(ref: StoreRef, key: str, version: str | None) -> Preview:
    """The object at full size in a format every browser shows (AVIF becomes PNG).

    Raises:
        Unavailable: missing, unreadable or not an image.
    """
    try:
        return preview(read_object(ref, key), max_side=None, exact=True)
    except PreviewError as exc:
        raise Unavailable(str(exc)) from exc


@st.cache_data(ttl=3600, max_entries=256, show_spinner=False)
def mask_coverage(ref: StoreRef, key: str, version: str | None) -> float:
    """Share of the mask that is product, from 0 to 1.

    Raises:
        Unavailable: missing, unreadable or not an image.
    """
    try:
        return coverage(read_object(ref, key))
    except PreviewError as exc:
        raise Unavailable(str(exc)) from exc


@st.cache_data(ttl=3600, max_entries=256, show_spinner=False)
def overlay(
    ref: StoreRef,
    photo: tuple[str, str | None],
    mask: tuple[str, str | None],
    max_side: int = THUMB_SIDE,
) -> Preview:
    """The photo with the mask tinted over it (``photo`` and ``mask`` are (key, sha256) pairs).

    Raises:
        Unavailable: either is missing, unreadable or not an image.
    """
    try:
        photo_bytes, mask_bytes = read_object(ref, photo[0]), read_object(ref, mask[0])
        return mask_overlay(photo_bytes, mask_bytes, max_side=max_side)
    except PreviewError as exc:
        raise Unavailable(str(exc)) from exc


@st.cache_data(ttl=LINK_TTL_S, max_entries=4096, show_spinner=False)
def download_link(ref: StoreRef, key: str) -> str | None:
    """A URL a browser can fetch the object from (presigned on S3), or None for local stores.

    ``file://`` URLs point into the server's disk, which a browser elsewhere cannot open, so the
    page serves those files' bytes itself instead.
    """
    return _link(ref, key)


def _link(ref: StoreRef, key: str) -> str | None:
    try:
        url = _store(ref).url(key, expires_in=LINK_EXPIRES_S)
    except (StorageError, ConfigurationError):
        return None
    return url if url.startswith(("https://", "http://")) else None


@dataclass(frozen=True)
class Availability:
    """How a browser gets each file: a direct link (S3), or through the page if it is stored."""

    links: dict[str, str | None]
    present: dict[str, bool | None]


@st.cache_data(ttl=5, max_entries=64, show_spinner=False)
def availability(ref: StoreRef, keys: tuple[str, ...]) -> Availability:
    """Presigned links and presence of many objects in one cached call.

    A local store answers presence with one ``stat`` per file; on S3 the presigned link itself
    reports a missing object, so no HEAD request is spent per file (presence is None).
    """
    links = {key: _link(ref, key) for key in keys}
    present: dict[str, bool | None] = {}
    for key in keys:
        if links[key] is not None:
            present[key] = None
            continue
        try:
            present[key] = _store(ref).exists(key)
        except (StorageError, ConfigurationError):
            present[key] = None
    return Availability(links=links, present=present)

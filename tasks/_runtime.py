"""Per-process resources of the steps: settings, object store and database, built once."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import lru_cache
from typing import TypeVar

from PIL import Image
from sqlmodel import Session

from core.db import retrying, session_scope, upgrade_schema
from core.jobs import AssetRecord
from core.manifest import Manifest
from core.settings import Settings, get_settings
from core.storage import ObjectStore, new_store
from core.tables import AssetKind
from imaging.codec import CONTENT_TYPES, decode, encode

__all__ = [
    "db",
    "decode_from_store",
    "describe_stored",
    "put_image",
    "put_manifest",
    "reset",
    "run_in_db",
    "settings",
    "store",
    "use_store",
]

T = TypeVar("T")
_schema_lock = threading.Lock()


def settings() -> Settings:
    """The process settings."""
    return get_settings()


@lru_cache(maxsize=4)
def _store_for(
    url: str, endpoint: str | None, region: str | None, block: str | None
) -> ObjectStore:
    return new_store(url, endpoint_url=endpoint, region=region, credentials_block=block)


_override: list[ObjectStore] = []


def store() -> ObjectStore:
    """The object store named by the settings (one client per process)."""
    if _override:
        return _override[0]
    s = settings()
    return _store_for(s.store_url, s.s3_endpoint_url, s.s3_region, s.aws_credentials_block)


def use_store(replacement: ObjectStore | None) -> None:
    """Make every step use ``replacement`` (a test double); ``None`` restores the configured one."""
    _override.clear()
    if replacement is not None:
        _override.append(replacement)


def reset() -> None:
    """Forget cached stores and overrides (settings changed)."""
    _override.clear()
    _store_for.cache_clear()


@contextmanager
def db() -> Iterator[Session]:
    """A committed-on-success session on the job tables; the schema is upgraded once."""
    url = settings().database_url
    with _schema_lock:
        upgrade_schema(url)
    with session_scope(url) as session:
        yield session


def run_in_db(work: Callable[[Session], T], *, what: str) -> T:
    """``work(session)`` in one committed transaction, repeated whole while the DB is down.

    A database restart must not fail the step or lose its work: the transaction is retried
    (``core.db.retrying``, up to the ``db_retry_s`` setting), the step body is not run again.
    ``what`` names the work in the retry warnings.
    """

    def attempt() -> T:
        with db() as session:
            return work(session)

    return retrying(attempt, what=what)


def decode_from_store(key: str) -> Image.Image:
    """Decode a stored image (already normalised when it was written)."""
    s = settings()
    return decode(store().get(key), max_pixels=s.max_source_pixels, min_side=1)


def put_image(
    key: str,
    image: Image.Image,
    fmt: str,
    *,
    kind: AssetKind,
    quality: int | None = None,
    variant: int | None = None,
    size: str | None = None,
) -> AssetRecord:
    """Encode ``image`` as ``fmt``, store it under ``key`` and describe it as an asset."""
    data = encode(image, fmt, quality=quality)
    stored = store().put(key, data, content_type=CONTENT_TYPES[fmt])
    return AssetRecord(
        kind=kind,
        key=key,
        content_type=stored.content_type,
        bytes=stored.size,
        width=image.width,
        height=image.height,
        variant=variant,
        size=size,
        format=fmt,
        sha256=stored.sha256,
    )


def put_manifest(key: str, manifest: Manifest) -> AssetRecord:
    """Store ``manifest`` as JSON under ``key`` (camelCase, as published) and describe it."""
    data = manifest.model_dump_json(by_alias=True, indent=2).encode()
    stored = store().put(key, data, content_type="application/json")
    return AssetRecord(
        kind=AssetKind.MANIFEST,
        key=key,
        content_type=stored.content_type,
        bytes=stored.size,
        format="json",
        sha256=stored.sha256,
    )


def _recorded(
    session: Session, key: str
) -> tuple[int | None, int | None, str | None, str | None] | None:
    """Width, height, format and digest from an asset row already recorded for ``key``."""
    from sqlmodel import select

    from core.tables import Asset

    row = session.exec(select(Asset).where(Asset.key == key)).first()
    return (row.width, row.height, row.format, row.sha256) if row else None


def describe_stored(
    key: str,
    kind: AssetKind,
    *,
    variant: int | None = None,
    size: str | None = None,
) -> AssetRecord | None:
    """The asset record of an object already in the store, or None when it is not there.

    Dimensions come from an existing asset row for the same key (another theme's job made
    it) and only when there is none from the object's header bytes.
    """
    from imaging.codec import probe

    head = store().head(key)
    if head is None:
        return None
    known = run_in_db(lambda session: _recorded(session, key), what="asset lookup")
    if known is None:
        info = probe(store().get(key))
        known = (info.width, info.height, info.format, head.sha256)
    width, height, fmt, digest = known
    return AssetRecord(
        kind=kind,
        key=key,
        content_type=head.content_type,
        bytes=head.size,
        width=width,
        height=height,
        variant=variant,
        size=size,
        format=fmt,
        sha256=digest or head.sha256,
    )

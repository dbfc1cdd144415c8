"""Step 1a: fetch the source image into the store as ``originals/{sku}/{sha}.{ext}``."""

from __future__ import annotations

import hashlib
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import BaseModel

from core.context import JobContext
from core.download import DownloadPolicy, download_source
from core.errors import InputError
from core.keys import original_key, original_prefix
from core.tables import AssetKind, Step
from core.urls import redact_url
from imaging.codec import CONTENT_TYPES, EXTENSIONS, InvalidImage, probe, sniff
from tasks._runtime import describe_stored, settings, store
from tasks.step import StepRecord, policy_task, step

__all__ = ["SourceRef", "download", "fetch_source", "prefetch"]

_ACCEPTED = ("jpeg", "png", "webp", "avif", "tiff", "gif")


class SourceRef(BaseModel):
    """Where the original landed."""

    key: str
    sha256: str
    bytes: int
    skipped: bool = False


def _read_local(source: str, max_bytes: int) -> bytes:
    path = Path(urlsplit(source).path if source.startswith("file://") else source)
    if not path.is_file():
        raise InputError(f"no such file: {path}")
    if path.stat().st_size > max_bytes:
        raise InputError(f"{path.name} is {path.stat().st_size:,} bytes; limit {max_bytes:,}")
    return path.read_bytes()


def _fetch_bytes(source: str) -> bytes:
    s = settings()
    scheme = urlsplit(source).scheme
    if scheme in ("http", "https"):
        policy = DownloadPolicy(
            max_bytes=s.max_source_bytes,
            max_redirects=s.max_redirects,
            allow_private=s.allow_private_sources,
            connect_timeout_s=s.download_connect_timeout,
            read_timeout_s=s.download_read_timeout,
            deadline_s=s.download_deadline_s,
            min_rate_bps=s.download_min_rate_bps,
        )
        return download_source(source, policy).data
    if s.allow_local_sources and scheme in ("", "file"):
        return _read_local(source, s.max_source_bytes)
    if scheme in ("", "file"):
        raise InputError("local paths are accepted by the `packshot process` command only")
    raise InputError(f"image URL must be http(s), got {scheme!r}: {redact_url(source)}")


def _validate(data: bytes, expected_sha256: str | None) -> tuple[str, str]:
    digest = hashlib.sha256(data).hexdigest()
    if expected_sha256 and digest != expected_sha256.lower():
        raise InputError(f"sha256 mismatch: expected {expected_sha256.lower()}, got {digest}")
    fmt = sniff(data)
    if fmt not in _ACCEPTED:
        raise InputError("source is not an image (JPEG, PNG, WebP, AVIF, TIFF or GIF expected)")
    try:
        info = probe(data)
    except InvalidImage as exc:
        raise InputError(f"source image is unreadable: {exc}") from exc
    s = settings()
    if info.width * info.height > s.max_source_pixels:
        raise InputError(
            f"image is {info.width}×{info.height} px, over the limit of "
            f"{s.max_source_pixels:,} pixels"
        )
    if max(info.width, info.height) < s.min_source_px:
        raise InputError(
            f"image is {info.width}×{info.height} px; the longer side must be at least "
            f"{s.min_source_px} px"
        )
    return digest, fmt


def fetch_source(sku: str, source: str, sha256: str | None, *, reuse: bool = True) -> SourceRef:
    """Download (or read) ``source``, verify it and store it; reuses a stored original."""
    if sha256 and reuse:
        existing = next(iter(store().list(original_prefix(sku, sha256.lower()))), None)
        if existing is not None:
            head = store().head(existing)
            return SourceRef(
                key=existing, sha256=sha256.lower(), bytes=head.size if head else 0, skipped=True
            )
    data = _fetch_bytes(source)
    digest, fmt = _validate(data, sha256)
    key = original_key(sku, digest, EXTENSIONS[fmt])
    store().put(key, data, content_type=CONTENT_TYPES[fmt])
    return SourceRef(key=key, sha256=digest, bytes=len(data))


@step(Step.DOWNLOAD, timeout_s=180)
def download(ctx: JobContext, record: StepRecord) -> str:
    """Fetch the job's source image, verify its sha256 and format, and store the original.

    A sha256 mismatch, a source that is not an image or is out of bounds fails the job as bad
    input. A local path is only accepted from the CLI (``PACKSHOT_ALLOW_LOCAL_SOURCES``).

    Args:
        ctx: the job (its source URL and expected sha256; ``force`` fetches again even when
            the original is stored).
        record: this attempt's step row.
    """
    ref = fetch_source(ctx.sku, ctx.source_url, ctx.sha256, reuse=not ctx.force)
    record.skipped = ref.skipped
    record.provider = "store" if ref.skipped else urlsplit(ctx.source_url).scheme or "file"
    record.details = {"bytes": ref.bytes, "source": ctx.shown_source}
    asset = describe_stored(ref.key, AssetKind.ORIGINAL)
    if asset is not None:
        record.assets.append(asset)
    return ref.key


def _prefetch(sku: str, image_url: str) -> SourceRef:
    """Fetch a source whose sha256 is not known yet; the job is created from its digest.

    Args:
        sku: product SKU (part of the key).
        image_url: http(s) URL of the photo (a local path only from the CLI).
    """
    return fetch_source(sku, image_url, None)


# Runs before the job exists, so it has the step policy but writes no step row of its own:
# the flow records it as the job's download once the job is there.
prefetch = policy_task(_prefetch, name=Step.DOWNLOAD.value, timeout_s=180)

"""The object-store contract: ``ObjectStore`` protocol, ``StoredObject``, key rules and headers."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Protocol, runtime_checkable

from core.errors import StorageError

__all__ = [
    "IMMUTABLE_CACHE_CONTROL",
    "MAX_KEY_BYTES",
    "NO_CACHE",
    "ObjectNotFound",
    "ObjectStore",
    "StoredObject",
    "cache_control_for",
    "content_type_for",
    "validate_key",
]

MAX_KEY_BYTES = 1024
IMMUTABLE_CACHE_CONTROL = "public, max-age=31536000, immutable"
NO_CACHE = "no-cache"
DEFAULT_CONTENT_TYPE = "application/octet-stream"

_CONTENT_TYPES: dict[str, str] = {
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".png": "image/png",
    ".webp": "image/webp",
    ".avif": "image/avif",
    ".tif": "image/tiff",
    ".tiff": "image/tiff",
    ".gif": "image/gif",
    ".json": "application/json",
}


@dataclass(frozen=True)
class StoredObject:
    """What a store knows about one object.

    Attributes:
        key: the object's key, relative to the store (never includes an S3 prefix).
        size: length in bytes.
        content_type: the exact Content-Type (``image/jpeg``, ``application/json``, …).
        sha256: lowercase hex sha256 of the bytes, when the store knows it cheaply.
    """

    key: str
    size: int
    content_type: str
    sha256: str | None = None


class ObjectNotFound(StorageError):
    """The key does not exist in the store; retrying cannot make it appear."""

    retryable = False


@runtime_checkable
class ObjectStore(Protocol):
    """A flat key → bytes store (local folder, S3 bucket, memory).

    Keys are ``/``-separated relative paths checked by :func:`validate_key`. Every method
    raises ``ValueError`` for an invalid key, :class:`~core.errors.StorageError` for a transient
    failure and :class:`~core.errors.ConfigurationError` when the store is misconfigured (bad
    credentials, missing bucket).
    """

    name: str

    def put(self, key: str, data: bytes, *, content_type: str) -> StoredObject:
        """Write ``data`` under ``key`` (replacing any object there) and describe the result."""
        ...

    def get(self, key: str) -> bytes:
        """Return the object's bytes.

        Raises:
            ObjectNotFound: the key does not exist.
        """
        ...

    def head(self, key: str) -> StoredObject | None:
        """Describe the object, or ``None`` if it does not exist."""
        ...

    def exists(self, key: str) -> bool:
        """True if an object is stored under ``key``."""
        ...

    def delete(self, key: str) -> None:
        """Remove the object; deleting a missing key is not an error."""
        ...

    def list(self, prefix: str = "") -> Iterator[str]:
        """Yield the keys starting with ``prefix`` (a plain string prefix), sorted."""
        ...

    def url(self, key: str, *, expires_in: int = 3600) -> str:
        """A URL for reading the object: ``file://``, presigned ``https://`` or ``memory://``."""
        ...

    def describe(self) -> str:
        """A human-readable location for logs; never contains a secret."""
        ...


def validate_key(key: str) -> str:
    """Check that ``key`` is a safe, relative, ``/``-separated object key and return it.

    Rejected: the empty string, a leading ``/``, empty segments (``a//b``, trailing ``/``),
    ``.`` or ``..`` segments, backslashes, control characters (NUL included) and keys longer than
    1024 bytes in UTF-8.

    Args:
        key: the candidate key, e.g. ``cutouts/SKU1/ab12….png``.

    Returns:
        The key, unchanged.

    Raises:
        ValueError: the key is unsafe; the message names it.

    Example:
        >>> validate_key("masks/SKU1/abc.png")
        'masks/SKU1/abc.png'
    """
    problem = _key_problem(key)
    if problem:
        shown = key if len(key) <= 200 else key[:200] + "…"
        raise ValueError(f"invalid object key {shown!r}: {problem}")
    return key


def _key_problem(key: str) -> str | None:
    if not isinstance(key, str) or not key:
        return "must be a non-empty string"
    if len(key.encode("utf-8", "surrogatepass")) > MAX_KEY_BYTES:
        return f"longer than {MAX_KEY_BYTES} bytes"
    if key.startswith("/"):
        return "must be relative (no leading '/')"
    if "\\" in key:
        return "backslashes are not allowed"
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in key):
        return "control characters are not allowed"
    segments = key.split("/")
    if "" in segments:
        return "empty path segment ('//' or trailing '/')"
    if "." in segments or ".." in segments:
        return "'.' and '..' segments are not allowed"
    return None


def content_type_for(key: str) -> str:
    """The exact Content-Type for ``key``'s extension, ``application/octet-stream`` if unknown."""
    return _CONTENT_TYPES.get(PurePosixPath(key).suffix.lower(), DEFAULT_CONTENT_TYPE)


def cache_control_for(key: str, content_type: str) -> str:
    """The Cache-Control header for an object.

    Images live under content-addressed keys, so they never change and may be cached for a year.
    Manifests are rewritten when a set is re-run, so they (and anything else: JSON, unknown types)
    get ``no-cache``.

    Args:
        key: the object key.
        content_type: its Content-Type (parameters such as ``; charset=`` are ignored).

    Returns:
        ``"public, max-age=31536000, immutable"`` or ``"no-cache"``.

    Example:
        >>> cache_control_for("cutouts/S1/ab.png", "image/png")
        'public, max-age=31536000, immutable'
    """
    media_type = content_type.split(";", 1)[0].strip().lower()
    if key.startswith("manifests/") or not media_type.startswith("image/"):
        return NO_CACHE
    return IMMUTABLE_CACHE_CONTROL

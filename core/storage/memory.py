"""In-memory object store (test double, offline development) and a failure-injecting wrapper."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from urllib.parse import quote

from core.errors import StorageError
from core.storage.base import ObjectNotFound, ObjectStore, StoredObject, validate_key

__all__ = ["FlakyStore", "MemoryStore"]


class MemoryStore:
    """A thread-safe dict of key → bytes with the same semantics as the real stores.

    Keys are validated, a missing key raises :class:`ObjectNotFound` from ``get`` and the
    Content-Type given to ``put`` is kept exactly.
    """

    name: str = "memory"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._objects: dict[str, tuple[bytes, StoredObject]] = {}

    def put(self, key: str, data: bytes, *, content_type: str) -> StoredObject:
        """Store a copy of ``data`` under ``key``."""
        validate_key(key)
        data = bytes(data)
        meta = StoredObject(
            key=key,
            size=len(data),
            content_type=content_type,
            sha256=hashlib.sha256(data).hexdigest(),
        )
        with self._lock:
            self._objects[key] = (data, meta)
        return meta

    def get(self, key: str) -> bytes:
        """The stored bytes; :class:`ObjectNotFound` if missing."""
        validate_key(key)
        with self._lock:
            entry = self._objects.get(key)
        if entry is None:
            raise ObjectNotFound(f"no object {key!r} in memory store")
        return entry[0]

    def head(self, key: str) -> StoredObject | None:
        """The object's description, ``None`` if missing."""
        validate_key(key)
        with self._lock:
            entry = self._objects.get(key)
        return None if entry is None else entry[1]

    def exists(self, key: str) -> bool:
        """True if ``key`` is stored."""
        return self.head(key) is not None

    def delete(self, key: str) -> None:
        """Forget ``key``; a missing key is fine."""
        validate_key(key)
        with self._lock:
            self._objects.pop(key, None)

    def list(self, prefix: str = "") -> Iterator[str]:
        """The sorted keys starting with ``prefix``."""
        with self._lock:
            keys = sorted(k for k in self._objects if k.startswith(prefix))
        return iter(keys)

    def url(self, key: str, *, expires_in: int = 3600) -> str:
        """``memory://<key>`` (percent-encoded; ``expires_in`` is ignored)."""
        return "memory://" + quote(validate_key(key))

    def describe(self) -> str:
        """``in-memory store (N objects)``."""
        with self._lock:
            count = len(self._objects)
        return f"in-memory store ({count} objects)"


class FlakyStore:
    """Wraps a store and fails its first ``failures`` calls of ``put`` with ``StorageError``.

    For retry tests: the failed calls write nothing, later calls reach the wrapped store.

    Args:
        inner: the store that does the real work.
        failures: how many ``put`` calls fail before one succeeds.

    Example:
        >>> store = FlakyStore(MemoryStore(), failures=1)
        >>> store.put("a.json", b"{}", content_type="application/json")
        Traceback (most recent call last):
        ...
        core.errors.StorageError: injected failure 1 of 1 for put 'a.json'
    """

    def __init__(self, inner: ObjectStore, failures: int = 1) -> None:
        if failures < 0:
            raise ValueError(f"failures must be >= 0, got {failures}")
        self.inner = inner
        self.name: str = inner.name
        self.failures = failures
        self.put_calls = 0
        self._lock = threading.Lock()

    def put(self, key: str, data: bytes, *, content_type: str) -> StoredObject:
        """Fail while injected failures remain, then delegate."""
        with self._lock:
            self.put_calls += 1
            attempt = self.put_calls
        if attempt <= self.failures:
            raise StorageError(f"injected failure {attempt} of {self.failures} for put {key!r}")
        return self.inner.put(key, data, content_type=content_type)

    def get(self, key: str) -> bytes:
        """Delegate."""
        return self.inner.get(key)

    def head(self, key: str) -> StoredObject | None:
        """Delegate."""
        return self.inner.head(key)

    def exists(self, key: str) -> bool:
        """Delegate."""
        return self.inner.exists(key)

    def delete(self, key: str) -> None:
        """Delegate."""
        self.inner.delete(key)

    def list(self, prefix: str = "") -> Iterator[str]:
        """Delegate."""
        return self.inner.list(prefix)

    def url(self, key: str, *, expires_in: int = 3600) -> str:
        """Delegate."""
        return self.inner.url(key, expires_in=expires_in)

    def describe(self) -> str:
        """The wrapped store's description, marked as flaky."""
        return f"flaky({self.inner.describe()})"

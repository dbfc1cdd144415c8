"""Object store on a local directory: atomic writes, content type from the key's extension."""

from __future__ import annotations

import hashlib
import os
import stat as stat_module
import tempfile
from collections.abc import Iterator
from pathlib import Path

from core.errors import StorageError
from core.storage.base import (
    ObjectNotFound,
    StoredObject,
    content_type_for,
    validate_key,
)

__all__ = ["LocalStore"]

# Temporary files live next to their target (same filesystem, so os.replace is atomic) and are
# never listed; keys whose last segment starts with this are refused so they cannot collide.
_TMP_PREFIX = ".packshot-tmp-"
_MISSING = (FileNotFoundError, NotADirectoryError, IsADirectoryError)


class LocalStore:
    """Objects as files under ``root``; the key is the relative path.

    Writes go to a temporary file in the target directory, are fsynced and then renamed over the
    final name, so readers never see a partial object and a crash never leaves a half-written file
    under a key. The Content-Type is derived from the extension (see
    :func:`~core.storage.base.content_type_for`); unknown extensions read back as
    ``application/octet-stream``. ``head`` reports ``sha256=None`` (hashing would mean reading the
    whole file); ``put`` reports it.

    Args:
        root: the store's directory; created on the first write. A relative path is taken
            relative to the current directory at construction time.
    """

    name: str = "file"

    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()

    def put(self, key: str, data: bytes, *, content_type: str) -> StoredObject:
        """Atomically write ``data`` under ``key``."""
        path = self._path(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            _atomic_write(path, data)
        except OSError as exc:
            raise StorageError(f"cannot write {key!r} in {self.root}: {exc.strerror}") from exc
        return StoredObject(
            key=key,
            size=len(data),
            content_type=content_type,
            sha256=hashlib.sha256(data).hexdigest(),
        )

    def get(self, key: str) -> bytes:
        """Read the object's bytes; :class:`ObjectNotFound` if missing."""
        path = self._path(key)
        try:
            return path.read_bytes()
        except _MISSING as exc:
            raise ObjectNotFound(f"no object {key!r} in {self.root}") from exc
        except OSError as exc:
            raise StorageError(f"cannot read {key!r} in {self.root}: {exc.strerror}") from exc

    def head(self, key: str) -> StoredObject | None:
        """Size and Content-Type of the object, ``None`` if missing."""
        path = self._path(key)
        try:
            stat = path.stat()
        except _MISSING:
            return None
        except OSError as exc:
            raise StorageError(f"cannot stat {key!r} in {self.root}: {exc.strerror}") from exc
        if not stat_module.S_ISREG(stat.st_mode):
            return None
        return StoredObject(key=key, size=stat.st_size, content_type=content_type_for(key))

    def exists(self, key: str) -> bool:
        """True if a file is stored under ``key``."""
        return self.head(key) is not None

    def delete(self, key: str) -> None:
        """Remove the file; a missing key is fine. Empty directories are left in place."""
        path = self._path(key)
        try:
            path.unlink(missing_ok=True)
        except (NotADirectoryError, IsADirectoryError):
            return
        except OSError as exc:
            raise StorageError(f"cannot delete {key!r} in {self.root}: {exc.strerror}") from exc

    def list(self, prefix: str = "") -> Iterator[str]:
        """The sorted keys starting with ``prefix``."""
        directory, _, _ = prefix.rpartition("/")
        start = self._path(directory) if directory else self.root
        try:
            keys = sorted(k for k in self._walk(start) if k.startswith(prefix))
        except OSError as exc:
            raise StorageError(f"cannot list {prefix!r} in {self.root}: {exc.strerror}") from exc
        return iter(keys)

    def url(self, key: str, *, expires_in: int = 3600) -> str:
        """The object's ``file://`` URI (``expires_in`` is ignored: local files do not expire)."""
        return self._path(key).as_uri()

    def describe(self) -> str:
        """``local directory /abs/path``."""
        return f"local directory {self.root}"

    def _path(self, key: str) -> Path:
        validate_key(key)
        if key.rsplit("/", 1)[-1].startswith(_TMP_PREFIX):
            raise ValueError(f"invalid object key {key!r}: reserved name prefix {_TMP_PREFIX!r}")
        path = self.root.joinpath(*key.split("/"))
        # validate_key rules out '..'; resolving also catches symlinks that point outside root.
        if not path.resolve().is_relative_to(self.root):
            raise ValueError(f"invalid object key {key!r}: resolves outside the store")
        return path

    def _walk(self, start: Path) -> Iterator[str]:
        if not start.is_dir():
            return
        for dirpath, _dirnames, filenames in os.walk(start, onerror=_raise):
            base = Path(dirpath).relative_to(self.root).as_posix()
            for filename in filenames:
                if filename.startswith(_TMP_PREFIX):
                    continue
                yield filename if base == "." else f"{base}/{filename}"


def _raise(exc: OSError) -> None:
    raise exc


def _atomic_write(path: Path, data: bytes) -> None:
    fd, tmp_name = tempfile.mkstemp(prefix=_TMP_PREFIX, dir=path.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        # mkstemp creates the file 0600; let other local users (a web server) read it.
        tmp.chmod(0o644)
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_directory(path.parent)


def _fsync_directory(directory: Path) -> None:
    # Makes the rename itself durable; POSIX only (directories cannot be opened on Windows).
    if os.name != "posix":
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

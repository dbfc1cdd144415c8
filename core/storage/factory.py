"""``new_store``: the object store named by a settings URL (``file://``, ``s3://``, ``memory://``)."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote

from core.errors import ConfigurationError
from core.storage.base import ObjectStore, validate_key
from core.storage.local import LocalStore
from core.storage.memory import MemoryStore
from core.storage.s3 import S3Store

__all__ = ["new_store", "redact_url"]

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
_USERINFO = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://)[^/?#]*@")


def new_store(
    url: str,
    *,
    endpoint_url: str | None = None,
    region: str | None = None,
    credentials_block: str | None = None,
    connect_timeout: float = 5,
    read_timeout: float = 30,
    max_attempts: int = 3,
) -> ObjectStore:
    """Build the object store that ``url`` names.

    Args:
        url: ``file:///abs/dir``, ``file://relative/dir`` (relative to the current directory),
            ``s3://bucket/prefix`` or ``memory://``.
        endpoint_url: S3-compatible endpoint (MinIO, R2, moto); S3 only.
        region: AWS region; S3 only.
        credentials_block: name of a prefect-aws ``AwsCredentials`` block; S3 only. Without it
            the standard AWS chain (environment, profile, instance role) applies.
        connect_timeout: S3 connect timeout in seconds.
        read_timeout: S3 read timeout in seconds.
        max_attempts: S3 attempts per request, the first included.

    Returns:
        A ``LocalStore``, ``S3Store`` or ``MemoryStore``. Nothing is created or contacted yet.

    Raises:
        ConfigurationError: unknown scheme, missing directory or bucket, or credentials embedded
            in the URL. Messages never repeat a ``user:password@`` part.

    Example:
        >>> new_store("memory://").name
        'memory'
    """
    match = _SCHEME.match(url)
    scheme = match.group(1).lower() if match else ""
    rest = url[match.end() :] if match else url
    if scheme == "file":
        return _local_store(url, rest)
    if scheme == "s3":
        bucket, _, prefix = rest.partition("/")
        _check_s3_location(url, bucket, prefix)
        return S3Store(
            bucket,
            prefix.strip("/"),
            endpoint_url=endpoint_url,
            region=region,
            credentials_block=credentials_block,
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            max_attempts=max_attempts,
        )
    if scheme == "memory":
        return MemoryStore()
    shown = f"{scheme!r}" if scheme else "(none)"
    raise ConfigurationError(
        f"unknown object store URL scheme {shown} in {redact_url(url)!r}; "
        "expected file://DIR, s3://bucket/prefix or memory://"
    )


def redact_url(url: str) -> str:
    """``url`` fit for a message: ``user:password@`` becomes ``***@``, a query ``?***``."""
    shown = _USERINFO.sub(r"\1***@", url)
    cut = min((i for i in (shown.find("?"), shown.find("#")) if i >= 0), default=-1)
    return shown if cut < 0 else shown[:cut] + "?***"


def _local_store(url: str, rest: str) -> LocalStore:
    if "@" in rest.split("/", 1)[0]:
        raise ConfigurationError(f"file store URL {redact_url(url)!r} must not contain '@'")
    directory = unquote(rest)
    if not directory.strip("/"):
        raise ConfigurationError(f"file store URL {redact_url(url)!r} names no directory")
    # "file:///abs" is absolute; "file://rel/dir" (and "file://./dir") is relative to the cwd.
    return LocalStore(Path(directory))


def _check_s3_location(url: str, bucket: str, prefix: str) -> None:
    if "@" in bucket:
        raise ConfigurationError(
            f"S3 store URL {redact_url(url)!r} embeds credentials; use a prefect-aws "
            "AwsCredentials block or the standard AWS chain instead"
        )
    if not bucket:
        raise ConfigurationError(
            f"S3 store URL {redact_url(url)!r} names no bucket (s3://bucket/prefix)"
        )
    if "?" in url or "#" in url:
        raise ConfigurationError(
            f"S3 store URL {redact_url(url)!r} must not have a query or fragment"
        )
    if prefix.strip("/"):
        try:
            validate_key(prefix.strip("/"))
        except ValueError as exc:
            raise ConfigurationError(
                f"S3 store URL {redact_url(url)!r} has an invalid prefix: {exc}"
            ) from exc

"""Safe download of a source image: http(s) only, no private addresses, capped size and redirects.

The address check runs after name resolution and again for every redirect hop; once connected,
the peer address is checked too, so a DNS answer that changes between check and connect
(rebinding) cannot reach an internal service.
"""

from __future__ import annotations

import hashlib
import socket
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import httpx

from core.errors import InputError, ProviderUnavailable
from core.urls import is_public_address, redact_url

__all__ = ["DownloadPolicy", "Downloaded", "download_source"]

Resolver = Callable[[str, int], list[str]]
_REDIRECTS = {301, 302, 303, 307, 308}
_CHUNK = 256 * 1024


def _system_resolver(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


@dataclass(frozen=True)
class DownloadPolicy:
    """Limits of one download."""

    max_bytes: int = 25_000_000
    max_redirects: int = 3
    allow_private: bool = False
    resolver: Resolver = _system_resolver


@dataclass(frozen=True)
class Downloaded:
    """The downloaded bytes and what was learnt on the way."""

    data: bytes
    sha256: str
    final_url: str
    content_type: str | None


def _check_url(url: str, policy: DownloadPolicy) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise InputError(f"image URL must be http(s), got {parts.scheme or 'no'} scheme")
    if not parts.hostname:
        raise InputError(f"image URL has no host: {redact_url(url)}")
    if policy.allow_private:
        return
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        addresses = policy.resolver(parts.hostname, port)
    except (OSError, UnicodeError) as exc:
        raise ProviderUnavailable(f"cannot resolve host {parts.hostname}: {exc}") from exc
    blocked = [a for a in addresses if not is_public_address(a)]
    if blocked or not addresses:
        raise InputError(
            f"image URL host {parts.hostname} resolves to a private or loopback address "
            f"({', '.join(blocked) or 'none'}); set PACKSHOT_ALLOW_PRIVATE_SOURCES=true to allow"
        )


def _check_peer(response: httpx.Response, policy: DownloadPolicy) -> None:
    stream = response.extensions.get("network_stream")
    if policy.allow_private or stream is None:
        return
    peer = stream.get_extra_info("server_addr")
    if peer and not is_public_address(str(peer[0])):
        raise InputError(f"connection went to a private address {peer[0]}; refused")


def _status_error(response: httpx.Response, url: str) -> Exception:
    status = response.status_code
    where = redact_url(url)
    if status == 429 or status >= 500:
        return ProviderUnavailable(f"image host answered HTTP {status} for {where}")
    return InputError(f"image host answered HTTP {status} for {where}")


def _read_capped(response: httpx.Response, policy: DownloadPolicy) -> bytes:
    declared = response.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > policy.max_bytes:
        raise InputError(
            f"image is {int(declared):,} bytes; the limit is {policy.max_bytes:,} bytes"
        )
    chunks: list[bytes] = []
    total = 0
    for chunk in response.iter_bytes(_CHUNK):
        total += len(chunk)
        if total > policy.max_bytes:
            raise InputError(f"image is larger than the limit of {policy.max_bytes:,} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def download_source(client: httpx.Client, url: str, policy: DownloadPolicy) -> Downloaded:
    """GET ``url`` under ``policy``, following at most ``policy.max_redirects`` redirects.

    Raises:
        InputError: bad scheme, private address, 4xx, too large, too many redirects, empty.
        ProviderUnavailable: timeouts, network errors, 429 and 5xx (worth a retry).
    """
    current = url
    for _hop in range(policy.max_redirects + 1):
        _check_url(current, policy)
        try:
            with client.stream("GET", current, follow_redirects=False) as response:
                _check_peer(response, policy)
                if response.status_code in _REDIRECTS and "location" in response.headers:
                    current = urljoin(current, response.headers["location"])
                    continue
                if response.status_code != 200:
                    raise _status_error(response, current)
                data = _read_capped(response, policy)
                content_type = response.headers.get("content-type")
        except httpx.TimeoutException as exc:
            raise ProviderUnavailable(f"timed out downloading {redact_url(current)}") from exc
        except httpx.TransportError as exc:
            raise ProviderUnavailable(
                f"network error downloading {redact_url(current)}: {type(exc).__name__}"
            ) from exc
        if not data:
            raise InputError(f"image URL returned an empty body: {redact_url(current)}")
        digest = hashlib.sha256(data).hexdigest()
        return Downloaded(data=data, sha256=digest, final_url=current, content_type=content_type)
    raise InputError(f"more than {policy.max_redirects} redirects for {redact_url(url)}")

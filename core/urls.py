"""URL helpers: validation of source URLs, redaction for anything shown to people, and
private-address checks for downloads."""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit, urlunsplit

import httpx

__all__ = ["MAX_URL_CHARS", "is_public_address", "redact_url", "redact_urls", "url_problem"]

MAX_URL_CHARS = 4096
_URL = re.compile(r"https?://[^\s'\"<>]+")
_SPACE_OR_CONTROL = re.compile(r"[\s\x00-\x1f\x7f]")
_HOST_LABEL = re.compile(r"(?!-)[A-Za-z0-9_-]{1,63}(?<!-)")


def _host_problem(host: str) -> str | None:
    """Why ``host`` (as httpx sends it: lowercase, IDNA-encoded) is no usable host name."""
    if ":" in host:  # IPv6 literal, already checked by httpx
        return None
    name = host[:-1] if host.endswith(".") else host
    if len(name) > 253 or not all(_HOST_LABEL.fullmatch(label) for label in name.split(".")):
        return "has an invalid host name"
    return None


def url_problem(url: str) -> str | None:
    """Why ``url`` is not a downloadable absolute http(s) URL, or None when it is.

    The whole URL is checked the way the downloader will read it (httpx), so nothing that
    passes here fails later for being malformed: scheme, host name or address, and port.

    >>> url_problem("http://cdn.example:99999/a.jpg")
    'has an invalid port (must be a number from 1 to 65535)'
    >>> url_problem("https://cdn.example/a.jpg?token=x") is None
    True
    """
    if len(url) > MAX_URL_CHARS:
        return f"must be at most {MAX_URL_CHARS} characters"
    if _SPACE_OR_CONTROL.search(url):
        return "must not contain spaces or control characters"
    try:
        parts = urlsplit(url)
    except ValueError:
        return "is not a valid URL"
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return "must be an absolute http(s) URL"
    try:
        port = parts.port
    except ValueError:
        port = 0
    if port is not None and not 1 <= port <= 65535:
        return "has an invalid port (must be a number from 1 to 65535)"
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        return f"is not a valid URL ({exc})"
    return _host_problem(parsed.raw_host.decode("ascii"))


def redact_url(url: str) -> str:
    """``url`` without credentials or query values, safe for logs, errors and manifests.

    Never raises: a URL that cannot be split is shown as ``<unparseable url>``.

    Signed URLs carry their secret in the query (``X-Amz-Signature``, ``token``), so every
    query value is replaced while the parameter names stay readable.

    >>> redact_url("https://u:p@cdn.example/a.jpg?token=abc&w=1")
    'https://cdn.example/a.jpg?token=***&w=***'
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable url>"
    # The host and port as written, credentials dropped; never parsed further, so an
    # invalid port (or anything else odd) is shown instead of raising.
    host = parts.netloc.rpartition("@")[2]
    query = "&".join(
        f"{pair.split('=', 1)[0]}=***" if "=" in pair else pair
        for pair in parts.query.split("&")
        if pair
    )
    return urlunsplit((parts.scheme, host, parts.path, query, ""))


def redact_urls(text: str) -> str:
    """``text`` with every http(s) URL in it redacted (error messages that echo parameters).

    >>> redact_urls("GET https://cdn.example/a.jpg?sig=s3cr3t failed")
    'GET https://cdn.example/a.jpg?sig=*** failed'
    """
    return _URL.sub(lambda match: redact_url(match.group(0)), text)


def is_public_address(address: str) -> bool:
    """False for loopback, private, link-local, multicast, reserved and unspecified addresses."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return not (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
    )

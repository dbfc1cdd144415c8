"""URL helpers: redaction for anything shown to people, and private-address checks for downloads."""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit, urlunsplit

__all__ = ["is_public_address", "redact_url", "redact_urls"]

_URL = re.compile(r"https?://[^\s'\"<>]+")


def redact_url(url: str) -> str:
    """``url`` without credentials or query values, safe for logs, errors and manifests.

    Signed URLs carry their secret in the query (``X-Amz-Signature``, ``token``), so every
    query value is replaced while the parameter names stay readable.

    >>> redact_url("https://u:p@cdn.example/a.jpg?token=abc&w=1")
    'https://cdn.example/a.jpg?token=***&w=***'
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable url>"
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
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

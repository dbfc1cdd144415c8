"""HMAC signatures, sender side: ``t=<unix>,v1=<hex>`` (Stripe-style), inbound and outbound.

``v1`` is hex HMAC-SHA256 of ``"<t>.<raw body>"`` with a shared secret. The demo's stand-in for
3JMS and the tests sign webhook deliveries (``X-3JMS-Signature``, verified by
``webhook.security``); outbound events carry ``X-Packshot-Signature`` in the same scheme, with one
``v1`` per secret while a secret is rotated (``core.events``).
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Sequence

__all__ = ["SIGNATURE_HEADER", "sign", "signature"]

SIGNATURE_HEADER = "X-3JMS-Signature"


def signature(secrets: Sequence[str], body: bytes, timestamp: int) -> str:
    """``t=<timestamp>,v1=<hex>`` with one ``v1`` per secret, in the order given.

    >>> signature(["a", "b"], b"{}", 1793102400).count(",v1=")
    2
    """
    if not secrets:
        raise ValueError("at least one secret is needed to sign")
    signed = f"{timestamp}.".encode() + body
    parts = [f"t={timestamp}"]
    parts += [
        "v1=" + hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest() for secret in secrets
    ]
    return ",".join(parts)


def sign(secret: str, body: bytes, timestamp: int | None = None) -> str:
    """The header value for ``body`` signed with ``secret`` at ``timestamp`` (now by default).

    >>> sign("s3cret", b"{}", 1793102400)[:13]
    't=1793102400,'
    """
    return signature([secret], body, int(time.time()) if timestamp is None else timestamp)

"""The 3JMS webhook signature, sender side: ``X-3JMS-Signature: t=<unix>,v1=<hex>``.

``v1`` is hex HMAC-SHA256 of ``"<t>.<raw body>"`` with the shared secret (Stripe-style).
Used by the demo's stand-in for 3JMS and by tests; the webhook verifies the same scheme.
"""

from __future__ import annotations

import hashlib
import hmac
import time

__all__ = ["SIGNATURE_HEADER", "sign"]

SIGNATURE_HEADER = "X-3JMS-Signature"


def sign(secret: str, body: bytes, timestamp: int | None = None) -> str:
    """The header value for ``body`` signed with ``secret`` at ``timestamp`` (now by default).

    >>> sign("s3cret", b"{}", 1793102400)[:13]
    't=1793102400,'
    """
    t = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={digest}"

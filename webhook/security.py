"""3JMS webhook signatures: ``X-3JMS-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256>``.

The signed content is ``f"{t}.".encode() + raw_body``, keyed with ``PACKSHOT_WEBHOOK_SECRET``
(Stripe's scheme, docs/integrations.md). Several ``v1`` values may be sent while a secret is
being rotated: one match is enough. A timestamp more than 300 s away from now is refused, so a
captured delivery cannot be replayed later (a replay inside the window is harmless: the same
image is the same job). The sender side, ``sign``, lives in ``core.signing``.

>>> header = sign("s3cr3t", b'{"sku":"A"}', timestamp=1_700_000_000)
>>> header.startswith("t=1700000000,v1=")
True
>>> verify_signature("s3cr3t", header, b'{"sku":"A"}', now=1_700_000_100)
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time

from core.signing import SIGNATURE_HEADER, sign

__all__ = [
    "SIGNATURE_HEADER",
    "TOLERANCE_S",
    "SignatureError",
    "compute_signature",
    "sign",
    "verify_signature",
]

TOLERANCE_S = 300
_MAX_HEADER = 2048
_MAX_CANDIDATES = 8
_HEX64 = re.compile(r"[0-9a-fA-F]{64}")
_DIGITS = re.compile(r"[0-9]{1,12}")


class SignatureError(Exception):
    """The delivery's signature is missing, malformed, stale or wrong; ``reason`` says which."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def compute_signature(secret: str | bytes, timestamp: int, body: bytes) -> str:
    """Hex HMAC-SHA256 of ``"<timestamp>.<body>"`` with ``secret``."""
    key = secret.encode() if isinstance(secret, str) else secret
    return hmac.new(key, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def _parse(header: str) -> tuple[int, list[str]]:
    if len(header) > _MAX_HEADER:
        raise SignatureError("header too long")
    stamps: list[str] = []
    candidates: list[str] = []
    for part in header.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep:
            continue
        if key == "t":
            stamps.append(value.strip())
        elif key == "v1":
            candidates.append(value.strip())
    if len(stamps) != 1 or not _DIGITS.fullmatch(stamps[0]):
        raise SignatureError("malformed timestamp")
    candidates = [c.lower() for c in candidates if _HEX64.fullmatch(c)][:_MAX_CANDIDATES]
    if not candidates:
        raise SignatureError("no v1 signature")
    return int(stamps[0]), candidates


def verify_signature(
    secret: str | bytes,
    header: str | None,
    body: bytes,
    *,
    now: float | None = None,
    tolerance: int = TOLERANCE_S,
) -> None:
    """Accept the delivery or raise ``SignatureError`` (never says which part of a digest failed).

    Raises:
        SignatureError: no header, a malformed one, a timestamp outside ``tolerance`` seconds,
            or no ``v1`` value equal to the expected digest (compared in constant time).
    """
    if not header:
        raise SignatureError("missing header")
    timestamp, candidates = _parse(header)
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance:
        raise SignatureError("timestamp outside tolerance")
    expected = compute_signature(secret, timestamp, body).encode()
    matched = False
    for candidate in candidates:  # no early exit: every candidate costs the same
        matched |= hmac.compare_digest(expected, candidate.encode())
    if not matched:
        raise SignatureError("signature mismatch")

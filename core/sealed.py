"""Source URLs at rest: the shown form in clear, the whole URL sealed when it carries secrets.

A source URL may carry credentials (``https://user:pass@host/…``) or signed query values
(``?X-Amz-Signature=…``, ``?token=…``). The job table keeps two columns: ``source_url`` holds
the URL as anyone may see it (``core.urls.redact_url``: no credentials, no query values), and
``source_secret`` holds the whole URL only when the two differ. With ``PACKSHOT_SECRET_KEY``
set (required in production) the whole URL is encrypted with Fernet (AES-128-CBC and
HMAC-SHA256, so a changed token is detected, never silently wrong); without it (the embedded
profile) it is stored as written, as before.

Several keys separated by commas rotate: the first seals, every one of them opens, so old rows
stay readable while ``packshot`` runs with the new key first.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from typing import Protocol

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from pydantic import SecretStr

from core.errors import ConfigurationError
from core.settings import get_settings
from core.urls import redact_url

__all__ = [
    "SealedSource",
    "StoredSource",
    "open_source",
    "seal_source",
    "seal_source_url",
    "source_of",
]

_FERNET = "fernet:"
_PLAIN = "plain:"


@dataclass(frozen=True)
class SealedSource:
    """A source URL as stored: ``shown`` to ``source_url``, ``secret`` to ``source_secret``."""

    shown: str
    secret: str | None


def _fernet(key: SecretStr) -> MultiFernet:
    # Any string works as a key: each one is hashed to the 32 bytes Fernet wants, so an
    # operator can use a password manager's output as it is.
    keys = [part.strip() for part in key.get_secret_value().split(",") if part.strip()]
    if not keys:
        raise ConfigurationError("PACKSHOT_SECRET_KEY is blank")
    return MultiFernet(
        [Fernet(base64.urlsafe_b64encode(hashlib.sha256(k.encode()).digest())) for k in keys]
    )


def seal_source(url: str, key: SecretStr | None) -> SealedSource:
    """The columns to store for source ``url``: nothing secret in ``shown``, ever.

    >>> seal_source("https://cdn.example/a.jpg", None)
    SealedSource(shown='https://cdn.example/a.jpg', secret=None)
    >>> seal_source("https://u:p@cdn.example/a.jpg", None).shown
    'https://cdn.example/a.jpg'
    """
    shown = redact_url(url)
    if shown == url:
        return SealedSource(shown, None)
    if key is None:
        return SealedSource(shown, _PLAIN + url)
    token = _fernet(key).encrypt(url.encode()).decode("ascii")
    return SealedSource(shown, _FERNET + token)


def open_source(shown: str, secret: str | None, key: SecretStr | None) -> str:
    """The whole source URL from the two stored columns.

    Raises:
        ConfigurationError: the URL was sealed and no key, or none of the keys, opens it.
    """
    if secret is None:
        return shown
    if secret.startswith(_PLAIN):
        return secret.removeprefix(_PLAIN)
    if not secret.startswith(_FERNET):
        raise ConfigurationError(f"the stored source of {shown} is in an unknown form")
    if key is None:
        raise ConfigurationError(
            f"the source URL {shown} is encrypted and PACKSHOT_SECRET_KEY is not set"
        )
    try:
        return _fernet(key).decrypt(secret.removeprefix(_FERNET).encode()).decode()
    except InvalidToken:
        raise ConfigurationError(
            f"PACKSHOT_SECRET_KEY does not open the stored source URL {shown}: it was "
            "sealed with another key (list the old key after the new one to rotate)"
        ) from None


class StoredSource(Protocol):
    """Anything with the two stored columns: a ``Job`` row or a model read from one."""

    source_url: str
    source_secret: str | None


def seal_source_url(url: str) -> SealedSource:
    """``seal_source`` with the configured ``PACKSHOT_SECRET_KEY``."""
    return seal_source(url, get_settings().secret_key)


def source_of(job: StoredSource) -> str:
    """The whole source URL of ``job``, to fetch from; never to show (``job.source_url`` is)."""
    return open_source(job.source_url, job.source_secret, get_settings().secret_key)

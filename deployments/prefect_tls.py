"""Prefect's clients of a plain-HTTP API on loopback: a TLS context that costs nothing to build.

Prefect's client builds a verifying TLS context for every client it makes, even for an
``http://`` API: it parses the whole CA bundle each time (26–48 ms of CPU here). A flow run makes
four of them (the run's own, the events worker's, its version check, the runtime's), one on the
way to its first step, and a ``packshot process`` waits for each. A plain-HTTP API never uses
that context, so for one on loopback (the embedded stack's, the background server of
``packshot process``) Prefect is pointed at a CA file holding a single certificate, one of the
system's trusted ones: the context then takes about 1 ms. Any other API keeps Prefect's default
verification: one reached over HTTPS needs the real bundle, and a plain-HTTP one elsewhere could
redirect to HTTPS.
"""

from __future__ import annotations

import os
import ssl
from pathlib import Path
from urllib.parse import urlsplit

from core.settings import Settings

__all__ = ["unused_tls_ca_file"]

_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})


def unused_tls_ca_file(settings: Settings, api_url: str) -> Path | None:
    """The CA file for Prefect's clients of ``api_url`` if it is plain HTTP on loopback.

    Written once into the home's Prefect directory; None for any other API.
    """
    parts = urlsplit(api_url)
    if parts.scheme != "http" or parts.hostname not in _LOOPBACK:
        return None
    path = settings.prefect_home / "loopback-http-ca.pem"
    if not path.exists():
        trusted = ssl.create_default_context().get_ca_certs(binary_form=True)
        if not trusted:  # the system's CAs load lazily here: leave Prefect's default alone
            return None
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(f".{os.getpid()}.tmp")
        partial.write_text(ssl.DER_cert_to_PEM_cert(trusted[0]), encoding="ascii")
        partial.replace(path)  # whole or absent, for processes starting at the same time
    return path

"""Who may use the Prefect API: credentials, and the guards of the server `packshot up` starts.

The Prefect API creates flow runs, and a worker runs them: whoever can use it runs code on the
workers. So the server `packshot up` starts requires HTTP basic authentication
(``PREFECT_SERVER_API_AUTH_STRING``), keeps CSRF protection on, and accepts cross-origin
requests from its own UI only. Every client (workers and their flow runs, the webhook's
dispatcher, the dashboard, the CLI) sends the same string as ``PREFECT_API_AUTH_STRING``,
which reaches child processes through their environment, never on a command line or in a log.

Production sets the string (the same on every machine); the embedded stack generates one once
into ``$PACKSHOT_HOME/prefect-api-auth``, readable by its owner only. docs/security.md explains
the whole set-up.
"""

from __future__ import annotations

import logging
import os
import secrets
import stat
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from core.errors import ConfigurationError
from core.settings import Settings

__all__ = ["accepts", "ensure_auth_string", "server_env", "ui_origin"]

log = logging.getLogger("packshot.stack")
_USER = "packshot"


def ensure_auth_string(settings: Settings) -> str:
    """The configured auth string, else the embedded stack's own (generated on first use).

    Raises:
        ConfigurationError: in production without ``PREFECT_API_AUTH_STRING``, or when the
            stored file is empty.
    """
    path = settings.prefect_auth_file
    if settings.prefect_api_auth_string is not None:
        if path.is_file():
            _owner_only(path)
        return settings.prefect_api_auth_string.get_secret_value()
    if settings.profile == "production":
        raise ConfigurationError(
            "PREFECT_API_AUTH_STRING must be set in production (user:password, the same on "
            "every machine): the Prefect API runs code on the workers"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        # O_EXCL: two stacks starting at once on one home agree on the first one's string.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        _owner_only(path)
        stored = path.read_text().strip()
        if not stored:
            raise ConfigurationError(
                f"{path} is empty: delete it, a new one is generated"
            ) from None
        return stored
    value = f"{_USER}:{secrets.token_urlsafe(32)}"
    with os.fdopen(fd, "w") as handle:
        handle.write(value + "\n")
    log.info("generated the Prefect API credentials in %s (owner-only)", path)
    return value


def _owner_only(path: Path) -> None:
    """Take group and other permissions off ``path`` (someone loosened them)."""
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        path.chmod(0o600)
        log.warning("%s was readable by others (mode %o); now 0600", path, mode)


def ui_origin(ui_url: str) -> str:
    """``scheme://host[:port]`` of the Prefect UI: the one origin its API answers cross-origin.

    Example:
        >>> ui_origin("https://prefect.example.com/dashboard/")
        'https://prefect.example.com'
    """
    parts = urlsplit(ui_url)
    return f"{parts.scheme}://{parts.netloc}"


def server_env(settings: Settings, auth_string: str, ui_url: str) -> dict[str, str]:
    """Environment of the Prefect server `packshot up` starts: authentication, CSRF, CORS.

    ``PREFECT_UI_URL`` (the UI's public address, behind a TLS proxy) wins over ``ui_url`` (the
    address the stack computed) for the allowed origin.
    """
    return {
        "PREFECT_SERVER_API_AUTH_STRING": auth_string,
        "PREFECT_SERVER_API_CSRF_PROTECTION_ENABLED": "true",
        "PREFECT_SERVER_API_CORS_ALLOWED_ORIGINS": ui_origin(settings.prefect_ui_url or ui_url),
    }


def accepts(api_url: str, auth: str | None = None, timeout: float = 10.0) -> bool:
    """True when the Prefect API answers a request with these credentials (``user:password``;
    ``None`` sends none), False when it refuses them (401/403).

    Raises:
        httpx.HTTPError: the API cannot be reached.
    """
    credentials = httpx.BasicAuth(*auth.split(":", 1)) if auth and ":" in auth else None
    response = httpx.get(f"{api_url.rstrip('/')}/admin/version", auth=credentials, timeout=timeout)
    return response.status_code not in (401, 403)

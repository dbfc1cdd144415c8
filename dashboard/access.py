"""Who may change things from the dashboard: the sign-in rule, without Streamlit.

Every state-changing action (review decisions, re-runs, "Send again") needs a signed-in operator
when one is configured: Streamlit's own OIDC sign-in (``st.login``) when the dashboard's
``.streamlit/secrets.toml`` has an ``[auth]`` section, otherwise ``PACKSHOT_DASHBOARD_PASSWORD``
with the operator's name. With neither, actions are open, which only the embedded profile
allows. ``deployments.profile`` and ``packshot dashboard`` use this module to refuse a
production dashboard open to anyone; the pages use ``dashboard.signin``.
"""

from __future__ import annotations

import hmac
import tomllib
from collections.abc import Iterable
from pathlib import Path
from typing import Literal

from core.errors import ConfigurationError
from core.settings import Settings

__all__ = [
    "OPEN_OPERATOR",
    "SignInMode",
    "auth_section_configured",
    "open_to_anyone_problem",
    "password_matches",
    "secrets_files",
    "sign_in_mode",
]

SignInMode = Literal["oidc", "password", "open", "refused"]
# Who a decision records when actions are open (embedded profile, nothing configured).
OPEN_OPERATOR = "dashboard (no sign-in configured)"


def secrets_files(cwd: Path | None = None) -> tuple[Path, ...]:
    """Where Streamlit reads ``secrets.toml`` by default: the user's, then the working folder's."""
    return (
        Path.home() / ".streamlit" / "secrets.toml",
        (cwd or Path.cwd()) / ".streamlit" / "secrets.toml",
    )


def auth_section_configured(files: Iterable[Path] | None = None) -> bool:
    """True when a ``secrets.toml`` Streamlit reads has a non-empty ``[auth]`` section.

    Raises:
        ConfigurationError: a secrets file exists but is not valid TOML (Streamlit would
            refuse it too).
    """
    for path in secrets_files() if files is None else files:
        try:
            document = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            continue
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise ConfigurationError(f"{path} is not a readable TOML file: {exc}") from exc
        if document.get("auth"):
            return True
    return False


def sign_in_mode(settings: Settings, *, oidc: bool) -> SignInMode:
    """How operators sign in: OIDC wins, then the password; ``refused`` is open production."""
    if oidc:
        return "oidc"
    if settings.dashboard_password is not None:
        return "password"
    return "refused" if settings.profile == "production" else "open"


def open_to_anyone_problem(settings: Settings, files: Iterable[Path] | None = None) -> str | None:
    """Why a production dashboard may not start (its actions open to anyone), or None."""
    if settings.profile != "production" or settings.dashboard_password is not None:
        return None
    try:
        if auth_section_configured(files):
            return None
    except ConfigurationError as exc:
        return str(exc)
    return (
        "PACKSHOT_DASHBOARD_PASSWORD must be set, or an [auth] section in .streamlit/secrets.toml "
        "(Streamlit's OIDC sign-in): otherwise anyone who reaches the dashboard can approve, "
        "reject and re-run jobs"
    )


def password_matches(given: str, settings: Settings) -> bool:
    """Whether ``given`` is ``PACKSHOT_DASHBOARD_PASSWORD``, compared in constant time."""
    expected = settings.dashboard_password
    if expected is None:
        return False
    return hmac.compare_digest(given.encode(), expected.get_secret_value().encode())

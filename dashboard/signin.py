"""Signing operators in: the sidebar panel, and who (if anyone) may act on this page view.

The rule is in ``dashboard.access``. Streamlit keeps session state per browser session, so a
new tab can always guess again: a wrong password therefore costs a pause taken under one lock
for the whole dashboard process, which no number of tabs can run side by side.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping

import streamlit as st

from core.settings import get_settings
from dashboard.access import OPEN_OPERATOR, SignInMode, password_matches, sign_in_mode
from dashboard.markup import md_text

__all__ = [
    "NAME_KEY",
    "OPERATOR_KEY",
    "PASSWORD_KEY",
    "SIGN_IN_KEY",
    "WRONG_PASSWORD_DELAY_S",
    "action_blocked",
    "mode",
    "operator",
    "sidebar_panel",
]

OPERATOR_KEY = "signed-in-operator"
NAME_KEY = "sign-in-name"
PASSWORD_KEY = "sign-in-password"
SIGN_IN_KEY = "sign-in"
ERROR_KEY = "sign-in-error"
WRONG_PASSWORD_DELAY_S = 1.0
MAX_NAME_CHARS = 128  # what job.review_by holds

_log = logging.getLogger("packshot.dashboard")
_wrong_password = threading.Lock()
_sleep = time.sleep  # tests pass a fake clock's sleep


def _auth_section() -> Mapping[str, object] | None:
    try:
        section = st.secrets.get("auth")
    except FileNotFoundError:  # no secrets.toml at all
        return None
    return section if isinstance(section, Mapping) and section else None


def mode() -> SignInMode:
    """How operators sign in on this dashboard (see ``dashboard.access.sign_in_mode``)."""
    return sign_in_mode(get_settings(), oidc=_auth_section() is not None)


def operator() -> str | None:
    """The name a decision records for this browser session; None until someone signs in."""
    current = mode()
    if current == "open":
        return OPEN_OPERATOR
    if current == "refused":
        return None
    if current == "oidc":
        if not st.user.get("is_logged_in", False):
            return None
        for claim in ("name", "email", "sub"):
            value = st.user.get(claim)
            if value:
                return str(value)[:MAX_NAME_CHARS]
        return "signed-in operator"
    name = st.session_state.get(OPERATOR_KEY)
    return name if isinstance(name, str) and name else None


def action_blocked() -> str | None:
    """Why state-changing buttons are disabled on this page view (their help text), or None."""
    if mode() == "refused":
        return (
            "Actions are off: the production profile needs PACKSHOT_DASHBOARD_PASSWORD or an "
            "[auth] section in .streamlit/secrets.toml."
        )
    if operator() is None:
        return "Sign in first (in the sidebar)."
    return None


def _submit() -> None:
    """The password form's callback: runs before the page is drawn again."""
    name = str(st.session_state.get(NAME_KEY, "")).strip()
    given = str(st.session_state.get(PASSWORD_KEY, ""))
    st.session_state[PASSWORD_KEY] = ""  # never kept in the session, whatever the outcome
    if not name:
        st.session_state[ERROR_KEY] = "Enter your name: decisions record who made them."
        return
    if not password_matches(given, get_settings()):
        with _wrong_password:
            _sleep(WRONG_PASSWORD_DELAY_S)
        _log.warning("dashboard sign-in refused for %r: wrong password", name[:MAX_NAME_CHARS])
        st.session_state[ERROR_KEY] = "Wrong password."
        return
    st.session_state[OPERATOR_KEY] = name[:MAX_NAME_CHARS]
    st.session_state.pop(ERROR_KEY, None)
    _log.info("dashboard operator %r signed in", name[:MAX_NAME_CHARS])


def _sign_out() -> None:
    st.session_state.pop(OPERATOR_KEY, None)


def _password_form() -> None:
    st.text_input("Your name", key=NAME_KEY, max_chars=MAX_NAME_CHARS)
    st.text_input("Dashboard password", key=PASSWORD_KEY, type="password")
    st.button("Sign in", key=SIGN_IN_KEY, on_click=_submit, icon=":material/login:")
    error = st.session_state.get(ERROR_KEY)
    if error:
        st.error(md_text(error), icon=":material/lock:")


def _oidc_buttons(section: Mapping[str, object]) -> None:
    # One provider in [auth] itself, or named ones in [auth.<provider>] sub-tables.
    if "client_id" in section:
        if st.button("Sign in", key=SIGN_IN_KEY, icon=":material/login:"):
            st.login()
        return
    for provider in (name for name, value in section.items() if isinstance(value, Mapping)):
        if st.button(
            f"Sign in with {md_text(provider)}",
            key=f"{SIGN_IN_KEY}-{provider}",
            icon=":material/login:",
        ):
            st.login(provider)


def sidebar_panel() -> None:
    """Who is signed in (with "Sign out"), or the way to sign in."""
    current = mode()
    if current == "open":
        st.caption("Actions are open to anyone: no sign-in is configured.")
        return
    if current == "refused":
        st.warning(md_text(action_blocked() or ""), icon=":material/lock:")
        return
    name = operator()
    if name is not None:
        st.caption(f":material/person: Signed in as **{md_text(name)}**")
        if current == "oidc":
            st.button("Sign out", key="sign-out", on_click=st.logout)
        else:
            st.button("Sign out", key="sign-out", on_click=_sign_out)
        return
    st.markdown("**Sign in** to approve, reject or re-run")
    section = _auth_section()
    if current == "oidc" and section is not None:
        _oidc_buttons(section)
    else:
        _password_form()

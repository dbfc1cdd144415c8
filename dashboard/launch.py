"""How to start the dashboard server: the ``streamlit run`` command line and its environment.

Shared by ``packshot dashboard``, ``packshot up`` and the end-to-end test, so all three run the
app the same way. Importing this module does not import Streamlit.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path

from core.settings import Settings

__all__ = ["APP_PATH", "streamlit_argv", "streamlit_env"]

APP_PATH = Path(__file__).resolve().with_name("streamlit_app.py")


def streamlit_argv(settings: Settings, *, port: int | None = None) -> list[str]:
    """``python -m streamlit run dashboard/streamlit_app.py`` on the configured address and port.

    Headless, without usage statistics, file watching, the developer menu or the full garbage
    collection after every run: an operator's server, not an editing session.

    Args:
        settings: ``dashboard_port`` and ``bind`` come from here.
        port: use this port instead of ``PACKSHOT_DASHBOARD_PORT`` (tests pick a free one).
    """
    return [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(APP_PATH),
        "--server.port",
        str(port or settings.dashboard_port),
        "--server.address",
        settings.bind,
        "--server.headless",
        "true",
        "--browser.gatherUsageStats",
        "false",
        "--server.fileWatcherType",
        "none",
        "--server.runOnSave",
        "false",
        "--client.toolbarMode",
        "viewer",
        "--global.developmentMode",
        "false",
        # A full garbage collection after every script run costs 150-400 ms on this app's heap
        # (pandas, Arrow, SQLAlchemy) and would run on each 5-second refresh of every open page;
        # Python's generational collector still runs as usual.
        "--runner.postScriptGC",
        "false",
    ]


def streamlit_env(settings: Settings, base: Mapping[str, str]) -> dict[str, str]:
    """``base`` plus what the dashboard process needs from Prefect's side.

    The re-run button talks to the API in ``PREFECT_API_URL``; without one it would start a
    throwaway Prefect server inside the dashboard, so the embedded server's address is filled in
    and throwaway servers are switched off. The API's credentials (``PREFECT_API_AUTH_STRING``,
    or the embedded stack's generated ones) go along, in the environment only.
    """
    env = dict(base)
    env.setdefault("PREFECT_API_URL", f"http://127.0.0.1:{settings.prefect_port}/api")
    if settings.prefect_api_auth_string is not None:
        env.setdefault(
            "PREFECT_API_AUTH_STRING", settings.prefect_api_auth_string.get_secret_value()
        )
    env.setdefault("PREFECT_SERVER_EPHEMERAL_ENABLED", "false")
    env.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    return env

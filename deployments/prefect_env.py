"""Where Prefect's API is: an explicit PREFECT_API_URL, the embedded server, or a temporary one.

A temporary Prefect server takes about ten seconds to start on a small machine, so the CLI
starts it in the background at once and does its own preparation while it boots.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import httpx

from core.settings import Settings

__all__ = [
    "PrefectApi",
    "answers_ok",
    "apply_prefect_defaults",
    "auth_string",
    "locate_api",
    "locate_api_url",
    "prefect_api",
]


_ONE_RUN_SERVER_OFF = (
    "PREFECT_UI_ENABLED",
    "PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED",
    "PREFECT_SERVER_SERVICES_LATE_RUNS_ENABLED",
    "PREFECT_SERVER_SERVICES_FOREMAN_ENABLED",
    "PREFECT_SERVER_SERVICES_CANCELLATION_CLEANUP_ENABLED",
    "PREFECT_SERVER_SERVICES_PAUSE_EXPIRATIONS_ENABLED",
    "PREFECT_SERVER_SERVICES_REPOSSESSOR_ENABLED",
    "PREFECT_SERVER_SERVICES_TRIGGERS_ENABLED",
)


def apply_prefect_defaults(settings: Settings, *, log_level: str | None = None) -> None:
    """Environment every Prefect process of the embedded stack shares (set before Prefect loads).

    Explicit values in the environment win; these only fill gaps.
    """
    settings.prefect_home.mkdir(parents=True, exist_ok=True)
    defaults = {
        "PREFECT_HOME": str(settings.prefect_home),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_LOGGING_EXTRA_LOGGERS": "packshot",
        "PREFECT_API_DATABASE_TIMEOUT": "30",
    }
    if log_level:
        defaults["PREFECT_LOGGING_LEVEL"] = log_level
    auth = auth_string(settings)
    if auth:  # the embedded stack's generated credentials (or PREFECT_API_AUTH_STRING itself)
        defaults["PREFECT_API_AUTH_STRING"] = auth
    for name, value in defaults.items():
        os.environ.setdefault(name, value)


def auth_string(settings: Settings) -> str | None:
    """The Prefect API credentials this process sends (``user:password``), if any."""
    secret = settings.prefect_api_auth_string
    return secret.get_secret_value() if secret is not None else None


@contextmanager
def prefect_api(api_url: str, auth: str | None) -> Iterator[None]:
    """Point this process's Prefect client at ``api_url``, with its credentials, for a block."""
    from prefect.settings import PREFECT_API_AUTH_STRING, PREFECT_API_URL, temporary_settings

    updates = {PREFECT_API_URL: api_url}
    if auth:
        updates[PREFECT_API_AUTH_STRING] = auth
    with temporary_settings(updates=updates):
        yield


def answers_ok(url: str, timeout: float = 1.0) -> bool:
    """True when a GET of ``url`` answers 200 within ``timeout`` seconds."""
    try:
        return httpx.get(url, timeout=timeout).status_code == 200
    except httpx.HTTPError:
        return False


def _healthy(api_url: str, timeout: float = 1.0) -> bool:
    return answers_ok(f"{api_url.rstrip('/')}/health", timeout)


@dataclass
class PrefectApi:
    """The API this process talks to, and how long we waited for it."""

    url: str
    kind: str  # "configured" | "embedded" | "temporary"
    startup_ms: float = 0.0
    _server: object | None = None
    _thread: threading.Thread | None = None
    _error: list[BaseException] = field(default_factory=list)

    def wait(self) -> None:
        """Block until a temporary server is up; record how long we waited."""
        if self._thread is None:
            return
        started = time.perf_counter()
        self._thread.join()
        self.startup_ms += (time.perf_counter() - started) * 1000
        if self._error:
            raise self._error[0]
        self.url = self._server.api_url  # type: ignore[attr-defined]

    def stop(self) -> None:
        """Send what is still queued (logs, events), then stop a temporary server."""
        if self._server is None:
            return
        from prefect.events.worker import EventsWorker
        from prefect.logging.handlers import APILogWorker

        APILogWorker.drain_all(timeout=10)
        EventsWorker.drain_all(timeout=10)
        self._server.stop()  # type: ignore[attr-defined]


def locate_api_url(settings: Settings) -> str | None:
    """The API of a running server (configured or embedded), or None when there is none."""
    if settings.prefect_api_url:
        return settings.prefect_api_url
    embedded = f"http://127.0.0.1:{settings.prefect_port}/api"
    return embedded if _healthy(embedded, timeout=0.5) else None


def locate_api(settings: Settings) -> PrefectApi:
    """Find the Prefect API, starting a temporary server in the background if there is none."""
    configured = settings.prefect_api_url
    if configured:
        return PrefectApi(url=configured, kind="configured")
    embedded = f"http://127.0.0.1:{settings.prefect_port}/api"
    if _healthy(embedded, timeout=0.3):
        return PrefectApi(url=embedded, kind="embedded")
    from prefect.server.api.server import SubprocessASGIServer

    # A one-run server needs neither the UI nor the background services: it starts faster.
    for name in _ONE_RUN_SERVER_OFF:
        os.environ.setdefault(name, "false")
    server = SubprocessASGIServer()
    api = PrefectApi(url="", kind="temporary", _server=server)

    def _start() -> None:
        try:
            server.start(timeout=120)
        except BaseException as exc:  # noqa: BLE001  (re-raised in the waiting thread)
            api._error.append(exc)

    api._thread = threading.Thread(target=_start, name="prefect-server", daemon=True)
    api._thread.start()
    return api

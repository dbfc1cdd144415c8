"""Where Prefect's API is: an explicit PREFECT_API_URL, the embedded server, or a background one.

A Prefect server takes seconds to start on a small machine, so a command that finds none
starts this home's background server (deployments.local_server) at once, does its own
preparation while it boots, and leaves it running for the next command.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from core.errors import ConfigurationError
from core.settings import Settings
from deployments import local_server
from deployments.health import answers_ok, wait_until_ok
from deployments.prefect_auth import accepts, ensure_auth_string
from deployments.prefect_tls import unused_tls_ca_file

if TYPE_CHECKING:
    from prefect.settings import Settings as PrefectSettings

__all__ = [
    "PrefectApi",
    "apply_prefect_defaults",
    "auth_string",
    "health_url",
    "locate_api",
    "locate_api_url",
    "prefect_api",
]


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


def health_url(api_url: str) -> str:
    """The health endpoint of the Prefect API at ``api_url`` (answers 200 once it serves)."""
    return f"{api_url.rstrip('/')}/health"


@dataclass
class PrefectApi:
    """The API this process talks to, and how long we waited for it."""

    url: str
    kind: str  # "configured" | "embedded" | "background"
    auth: str | None = None  # the credentials it wants (user:password)
    startup_ms: float = 0.0
    _lease: ExitStack = field(default_factory=ExitStack)
    _server: local_server.BackgroundServer | None = None
    tls_ca: Path | None = None  # a CA file that makes clients of a loopback HTTP API cheap
    _flow_settings: PrefectSettings | None = None  # built by prepare()

    @property
    def has_workers(self) -> bool:
        """True for a stack's server (deployments, workers); False for a background one."""
        return self.kind != "background"

    def wait(self, timeout: float = 120.0) -> None:
        """Block until a background server answers; record how long we waited.

        Raises:
            RuntimeError: the server stopped or did not answer within ``timeout``; its log
                file is named.
        """
        server = self._server
        if server is None:
            return
        try:
            # Plain HTTP on loopback: no certificate to verify, so no CA bundle to load (30 ms).
            waited = wait_until_ok(
                health_url(server.api_url),
                timeout,
                alive=server.alive,
                interval=0.05,
                request_timeout=0.5,
                verify=False,
            )
        except (RuntimeError, TimeoutError) as exc:
            raise RuntimeError(
                f"the background Prefect server did not start; see {server.log_file}"
            ) from exc
        self.startup_ms += waited * 1000
        self.url = server.api_url

    def prepare(self) -> None:
        """Build the Prefect settings ``flow_here`` uses, before ``wait``: this API, its
        credentials and, for a loopback HTTP API, the one-certificate CA file
        (``deployments.prefect_tls``).

        Prefect validates all its settings to point them at another API (40–65 ms of CPU):
        done while a background server boots, not after it answered.
        """
        from prefect.settings import (
            PREFECT_API_AUTH_STRING,
            PREFECT_API_SSL_CERT_FILE,
            PREFECT_API_URL,
            get_current_settings,
        )

        url = self._server.api_url if self._server is not None else self.url
        updates: dict[Any, object] = {PREFECT_API_URL: url}
        if self.auth:
            updates[PREFECT_API_AUTH_STRING] = self.auth
        if self.tls_ca is not None:  # a loopback HTTP API uses no TLS (deployments.prefect_tls)
            updates[PREFECT_API_SSL_CERT_FILE] = str(self.tls_ca)
        self._flow_settings = get_current_settings().copy_with_update(updates=updates)

    @contextmanager
    def flow_here(self) -> Iterator[None]:
        """For a block that calls a flow in this process: this API, its credentials, and no
        heartbeat thread (a run in this process ends with the command, which reports it;
        ``flows.heartbeats``)."""
        from prefect.context import SettingsContext, get_settings_context

        from flows.heartbeats import without_heartbeats

        if self._flow_settings is None:
            self.prepare()
        profile = get_settings_context().profile
        with SettingsContext(profile=profile, settings=self._flow_settings), without_heartbeats():
            yield

    def stop(self) -> None:
        """Send what is still queued (logs, events), then release a background server.

        The workers' own "still processing N items" notes are kept off the terminal: this drain
        is on purpose, and a command's output is its result.
        """
        from prefect.events.worker import EventsWorker
        from prefect.logging.handlers import APILogWorker

        with _quiet(APILogWorker.__name__), _quiet(EventsWorker.__name__):
            APILogWorker.drain_all(timeout=10)
            EventsWorker.drain_all(timeout=10)
        self._lease.close()


@contextmanager
def _quiet(logger_name: str) -> Iterator[None]:
    """Only errors from ``logger_name`` for the block."""
    logger = logging.getLogger(logger_name)
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def locate_api_url(settings: Settings) -> str | None:
    """The API of a stack (configured, or `packshot up`'s), or None when there is none.

    A background server (deployments.local_server) does not count: it has no deployments and
    no workers.

    Raises:
        ConfigurationError: the embedded port answers as a Prefect server that refuses this
            home's credentials (another home's), so neither can be used.
    """
    if settings.prefect_api_url:
        return settings.prefect_api_url
    embedded = f"http://127.0.0.1:{settings.prefect_port}/api"
    if local_server.find(settings) is not None:
        return None
    if not _listening(settings.prefect_port) or not answers_ok(health_url(embedded), timeout=0.5):
        return None
    if not _accepts(embedded, auth_string(settings)):
        raise ConfigurationError(
            f"127.0.0.1:{settings.prefect_port} is taken by a Prefect server that refuses this "
            "home's credentials: another home's `packshot up`, or the server another home's "
            "`packshot process` keeps for its next command (it stops after "
            f"{settings.local_server_idle_s:.0f} s unused). Stop it, or set "
            "PACKSHOT_PREFECT_PORT to a free port"
        )
    return embedded


def _listening(port: int) -> bool:
    """True when something accepts connections on the loopback ``port``.

    Checked before an HTTP client is made (one loads the CA bundle): on a fresh home nothing
    listens, and this check comes before the background server's start.
    """
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _accepts(api_url: str, auth: str | None) -> bool:
    """False when the server at ``api_url`` refuses these credentials."""
    try:
        return accepts(api_url, auth, timeout=2.0)
    except httpx.HTTPError:
        return True  # it answered its health check: the run will say what is wrong


def locate_api(settings: Settings) -> PrefectApi:
    """Find the Prefect API; use (and start, if need be) this home's background server if none."""
    url = locate_api_url(settings)
    if url is not None:
        kind = "configured" if settings.prefect_api_url else "embedded"
        api = PrefectApi(url=url, kind=kind, auth=auth_string(settings))
    else:
        # A fresh home has no credentials yet: the background server's start generates them.
        api = PrefectApi(url="", kind="background", auth=ensure_auth_string(settings))
        api._server = api._lease.enter_context(local_server.used(settings))
        url = api._server.api_url
    api.tls_ca = unused_tls_ca_file(settings, url)
    return api

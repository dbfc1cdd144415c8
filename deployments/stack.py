"""``packshot up``: the embedded stack as child processes, supervised, with prefixed logs.

Order of start: Prefect server (unless PREFECT_API_URL names one), bring-up (work pool,
deployments, limits, automations), a worker for both deployments, the webhook, the dashboard.
Every child runs in its own process group, so stopping the stack also stops the flow-run
processes a worker started: no orphans.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from core.settings import Settings
from deployments.bringup import ROOT, WORK_POOL, bring_up
from deployments.prefect_env import answers_ok

__all__ = ["Service", "Stack", "stack_env"]

log = logging.getLogger("packshot.stack")
_BIN = Path(sys.executable).parent
_OUTPUT_LOCK = threading.Lock()


def stack_env(
    settings: Settings, api_url: str, extra: dict[str, str] | None = None
) -> dict[str, str]:
    """Environment shared by every child: absolute home, the API URL, Prefect's defaults."""
    settings.prefect_home.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env.update(
        {
            "PACKSHOT_HOME": str(settings.home.expanduser().resolve()),
            "PREFECT_API_URL": api_url,
            "PREFECT_HOME": str(settings.prefect_home),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_SERVER_EPHEMERAL_ENABLED": "false",
            "PREFECT_LOGGING_EXTRA_LOGGERS": "packshot",
            # SQLite under a worker, a webhook and flow runs: wait for the lock, don't fail.
            "PREFECT_SERVER_DATABASE_TIMEOUT": "60",
            # A short poll keeps pickup latency low (the default is 10 s; one request a second).
            "PREFECT_WORKER_QUERY_SECONDS": "1",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(extra or {})
    return env


@dataclass
class Service:
    """One supervised child process."""

    name: str
    argv: list[str]
    health_url: str | None = None
    restarts: int = 0
    process: subprocess.Popen[bytes] | None = None
    _pump: threading.Thread | None = field(default=None, repr=False)

    def start(self, env: dict[str, str]) -> None:
        """Start the child in its own process group and relay its output with a prefix."""
        self.process = subprocess.Popen(
            self.argv,
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self._pump = threading.Thread(target=self._relay, name=f"log-{self.name}", daemon=True)
        self._pump.start()

    def _relay(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        prefix = f"[{self.name}] ".encode()
        for line in iter(self.process.stdout.readline, b""):
            with _OUTPUT_LOCK:
                sys.stdout.buffer.write(prefix + line)
                sys.stdout.buffer.flush()

    def alive(self) -> bool:
        """True while the child runs."""
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM the process group (twice: a worker wants two), SIGKILL what is left."""
        if self.process is None or self.process.poll() is not None:
            return
        group = os.getpgid(self.process.pid)
        for attempt in range(2):
            _signal_group(group, signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout / 2)
                break
            except subprocess.TimeoutExpired:
                log.debug("%s still running after SIGTERM %d", self.name, attempt + 1)
        _signal_group(group, signal.SIGKILL)  # children of the child (flow runs), if any
        self.process.wait(timeout=5)


def _signal_group(group: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(group, sig)


def wait_healthy(url: str, timeout: float, service: Service | None = None) -> None:
    """Poll ``url`` until it answers 200."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if service is not None and not service.alive():
            raise RuntimeError(f"{service.name} exited before it was ready")
        if answers_ok(url, timeout=2):
            return
        time.sleep(0.3)
    raise TimeoutError(f"{url} not ready after {timeout:.0f} s")


class Stack:
    """The embedded stack: start, supervise, stop."""

    MAX_RESTARTS = 3

    def __init__(
        self,
        settings: Settings,
        *,
        extra_env: dict[str, str] | None = None,
        webhook: bool = True,
        dashboard: bool = True,
        worker_limit: int = 2,
    ) -> None:
        self.settings = settings
        self.own_server = not settings.prefect_api_url
        host = "127.0.0.1" if settings.bind in ("0.0.0.0", "::") else settings.bind
        self.api_url = settings.prefect_api_url or f"http://{host}:{settings.prefect_port}/api"
        self.ui_url = self.api_url.removesuffix("/api")
        self.webhook_url = f"http://{host}:{settings.webhook_port}"
        self.dashboard_url = f"http://{host}:{settings.dashboard_port}"
        self.env = stack_env(settings, self.api_url, extra_env)
        self.services = self._services(webhook, dashboard, worker_limit)
        self._stopping = threading.Event()

    def _services(self, webhook: bool, dashboard: bool, limit: int) -> list[Service]:
        s, prefect = self.settings, str(_BIN / "prefect")
        services = []
        if self.own_server:
            services.append(
                Service(
                    "prefect",
                    [prefect, "server", "start", "--host", s.bind, "--port", str(s.prefect_port)],
                    f"{self.api_url}/health",
                )
            )
        services.append(
            Service(
                "worker",
                [
                    prefect,
                    "worker",
                    "start",
                    "--pool",
                    WORK_POOL,
                    "--type",
                    "process",
                    "--limit",
                    str(limit),
                ],
            )
        )
        if webhook and (ROOT / "webhook" / "app.py").exists():
            services.append(
                Service(
                    "webhook",
                    [
                        str(_BIN / "python"),
                        "-m",
                        "uvicorn",
                        "webhook.app:create_app",
                        "--factory",
                        "--host",
                        s.bind,
                        "--port",
                        str(s.webhook_port),
                        "--no-access-log",
                    ],
                    f"{self.webhook_url}/healthz",
                )
            )
        if dashboard and (ROOT / "dashboard" / "streamlit_app.py").exists():
            services.append(
                Service(
                    "dashboard",
                    [
                        str(_BIN / "streamlit"),
                        "run",
                        "dashboard/streamlit_app.py",
                        "--server.headless",
                        "true",
                        "--server.address",
                        s.bind,
                        "--server.port",
                        str(s.dashboard_port),
                        "--browser.gatherUsageStats",
                        "false",
                    ],
                    f"{self.dashboard_url}/_stcore/health",
                )
            )
        return services

    def start(self) -> None:
        """Start every service in order; bring the Prefect server up to date first."""
        for service in self.services:
            if service.name == "worker":
                log.info("bring-up: work pool, deployments, limits, automations")
                bring_up(self.env)
            service.start(self.env)
            if service.health_url:
                wait_healthy(service.health_url, 120, service)
            log.info("%s started", service.name)

    def supervise(self) -> int:
        """Block until Ctrl-C or a service fails for good; restart crashed services."""
        while not self._stopping.wait(1.0):
            for service in self.services:
                if service.alive():
                    continue
                code = service.process.returncode if service.process else None
                if service.restarts >= self.MAX_RESTARTS:
                    log.error(
                        "%s exited (%s) %d times; stopping", service.name, code, service.restarts
                    )
                    return 1
                service.restarts += 1
                log.warning("%s exited (%s); restarting", service.name, code)
                service.start(self.env)
        return 0

    def request_stop(self) -> None:
        """Ask ``supervise`` to return (from a signal handler)."""
        self._stopping.set()

    def stop(self) -> None:
        """Stop every service, newest first."""
        self._stopping.set()
        for service in reversed(self.services):
            service.stop()
            log.info("%s stopped", service.name)

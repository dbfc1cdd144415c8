"""``packshot up``: the stack's services as child processes, supervised, with prefixed logs.

Order of start: Prefect server (unless PREFECT_API_URL names one), bring-up (work pool,
deployments, limits, automations, results block), the workers, the webhook, the dashboard.
A machine may run any subset (``services``): production puts the server, the web processes and
each worker where it likes. Every child runs in its own process group, so stopping the stack
also stops the flow-run processes a worker started: no orphans.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from core.settings import Settings
from deployments.bringup import ROOT, WORK_POOL, bring_up
from deployments.prefect_env import answers_ok
from deployments.profile import SERVICES, worker_env

__all__ = ["SERVICES", "Service", "Stack", "stack_env"]

log = logging.getLogger("packshot.stack")
_BIN = Path(sys.executable).parent
_OUTPUT_LOCK = threading.Lock()


def stack_env(
    settings: Settings, api_url: str, extra: dict[str, str] | None = None
) -> dict[str, str]:
    """Environment shared by every child: absolute home, the API URL, Prefect's defaults."""
    settings.prefect_home.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    # Only the Prefect server needs its database URL (it may hold a password): see Stack.
    env.pop("PREFECT_API_DATABASE_CONNECTION_URL", None)
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
    env: dict[str, str] = field(default_factory=dict)
    restarts: int = 0
    process: subprocess.Popen[bytes] | None = None
    _pump: threading.Thread | None = field(default=None, repr=False)

    def start(self, env: dict[str, str]) -> None:
        """Start the child in its own process group and relay its output with a prefix."""
        self.process = subprocess.Popen(
            self.argv,
            cwd=ROOT,
            env={**env, **self.env},
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
    """The stack's services on this machine: start, supervise, stop."""

    MAX_RESTARTS = 3

    def __init__(
        self,
        settings: Settings,
        *,
        extra_env: dict[str, str] | None = None,
        services: Iterable[str] = SERVICES,
        workers: int | None = None,
        worker_limit: int | None = None,
    ) -> None:
        wanted = set(services)
        unknown = wanted - set(SERVICES)
        if unknown:
            raise ValueError(f"unknown services {sorted(unknown)}; choose from {list(SERVICES)}")
        self.settings = settings
        self.own_server = "prefect" in wanted and not settings.prefect_api_url
        host = "127.0.0.1" if settings.bind in ("0.0.0.0", "::") else settings.bind
        self.api_url = settings.prefect_api_url or f"http://{host}:{settings.prefect_port}/api"
        self.ui_url = self.api_url.removesuffix("/api")
        self.webhook_url = f"http://{host}:{settings.webhook_port}"
        self.dashboard_url = f"http://{host}:{settings.dashboard_port}"
        self.env = stack_env(settings, self.api_url, extra_env)
        # A machine that only runs workers leaves deployments to the one that runs the rest:
        # deployments record the code's path on the machine that deploys them.
        self.bootstrap = wanted != {"worker"}
        self.services = self._services(
            wanted, workers or settings.workers, worker_limit or settings.worker_limit
        )
        self._stopping = threading.Event()
        # Held while the supervisor restarts a child and while stop() runs: a child that exits
        # during shutdown must not be started again behind stop()'s back.
        self._lifecycle = threading.Lock()

    def _services(self, wanted: set[str], workers: int, limit: int) -> list[Service]:
        services = []
        if self.own_server:
            services.append(self._prefect_server())
        if "worker" in wanted:
            services += [self._worker(n, workers, limit) for n in range(1, workers + 1)]
        if "webhook" in wanted and (ROOT / "webhook" / "app.py").exists():
            services.append(self._webhook())
        if "dashboard" in wanted and (ROOT / "dashboard" / "streamlit_app.py").exists():
            services.append(self._dashboard())
        return services

    def _prefect_server(self) -> Service:
        s = self.settings
        argv = [
            str(_BIN / "prefect"),
            *("server", "start", "--host", s.bind, "--port", str(s.prefect_port)),
        ]
        env = {}
        if s.prefect_database_url is not None:
            env["PREFECT_API_DATABASE_CONNECTION_URL"] = s.prefect_database_url.get_secret_value()
        return Service("prefect", argv, f"{self.api_url}/health", env=env)

    def _worker(self, number: int, count: int, limit: int) -> Service:
        name = "worker" if count == 1 else f"worker-{number}"
        argv = [
            str(_BIN / "prefect"),
            *("worker", "start", "--pool", WORK_POOL, "--type", "process"),
            *("--limit", str(limit), "--name", f"{socket.gethostname()}-{name}"),
        ]
        return Service(name, argv, env=worker_env(self.settings))

    def _webhook(self) -> Service:
        s = self.settings
        argv = [
            str(_BIN / "python"),
            *("-m", "uvicorn", "webhook.app:create_app", "--factory"),
            *("--host", s.bind, "--port", str(s.webhook_port), "--no-access-log"),
        ]
        return Service("webhook", argv, f"{self.webhook_url}/healthz")

    def _dashboard(self) -> Service:
        from dashboard.launch import streamlit_argv

        return Service(
            "dashboard", streamlit_argv(self.settings), f"{self.dashboard_url}/_stcore/health"
        )

    def service(self, name: str) -> Service:
        """The service called ``name`` (``prefect``, ``worker``/``worker-N``, ``webhook``, …)."""
        for service in self.services:
            if service.name == name:
                return service
        raise KeyError(name)

    def start(self) -> None:
        """Start every service in order; bring the Prefect server up to date first."""
        if not self.own_server:
            wait_healthy(f"{self.api_url}/health", 120)
        bootstrapped = False
        for service in self.services:
            if service.name != "prefect" and self.bootstrap and not bootstrapped:
                log.info("bring-up: work pool, deployments, limits, automations, results")
                bring_up(self.env, self.settings)
                bootstrapped = True
            service.start(self.env)
            if service.health_url:
                wait_healthy(service.health_url, 120, service)
            log.info("%s started", service.name)
        if self.bootstrap and not bootstrapped:
            bring_up(self.env, self.settings)

    def supervise(self) -> int:
        """Block until Ctrl-C or a service fails for good; restart crashed services."""
        while not self._stopping.wait(1.0):
            for service in self.services:
                with self._lifecycle:
                    if self._stopping.is_set():
                        return 0
                    if service.alive():
                        continue
                    code = service.process.returncode if service.process else None
                    if service.restarts >= self.MAX_RESTARTS:
                        log.error(
                            "%s exited (%s) %d times; stopping",
                            service.name,
                            code,
                            service.restarts,
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
        with self._lifecycle:
            for service in reversed(self.services):
                service.stop()
                log.info("%s stopped", service.name)

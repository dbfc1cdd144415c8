"""``packshot up``: the stack's services as child processes, supervised, with prefixed logs.

Order of start: Prefect server (unless PREFECT_API_URL names one), bring-up (work pool,
deployments, limits, automations, results block), the workers, the webhook, the dashboard.
A machine may run any subset (``services``): production puts the server, the web processes and
each worker where it likes. The Prefect server it starts requires the API credentials every
child gets in its environment (``deployments.prefect_auth``).

Stopping stops the web processes, cancels the running flow runs through Prefect and ends their
processes within ``PACKSHOT_STOP_GRACE_S`` (``deployments.shutdown``), then stops the workers
and the server; whatever the stack started and is still running after that is killed. A child
that crashes is restarted; one that crashes too often in a row waits before its next restart,
and the others keep running.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from core.settings import Settings
from deployments import local_server, proctree, warm_engine
from deployments.bringup import ROOT, WORK_POOL, bring_up
from deployments.engine_start import SOCKET_ENV
from deployments.prefect_auth import ensure_auth_string, server_env
from deployments.prefect_env import auth_string, health_url
from deployments.prefect_server import server_argv
from deployments.prefect_tls import unused_tls_ca_file
from deployments.profile import SERVICES, worker_env
from deployments.service import CrashWindow, Service, wait_healthy
from deployments.shutdown import end_flow_runs

__all__ = ["SERVICES", "CrashWindow", "Service", "Stack", "stack_env"]

log = logging.getLogger("packshot.stack")
_BIN = Path(sys.executable).parent


def stack_env(
    settings: Settings, api_url: str, extra: dict[str, str] | None = None
) -> dict[str, str]:
    """Environment shared by every child: absolute home, the API URL, Prefect's defaults."""
    settings.prefect_home.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    # Only the Prefect server needs its database URL and its side of the credentials: see Stack.
    env.pop("PREFECT_API_DATABASE_CONNECTION_URL", None)
    env.pop("PREFECT_SERVER_API_AUTH_STRING", None)
    auth = auth_string(settings)
    if auth:
        env["PREFECT_API_AUTH_STRING"] = auth
    tls_ca = unused_tls_ca_file(settings, api_url)  # each Prefect client's TLS context: 1 ms
    if tls_ca is not None:
        env.setdefault("PREFECT_API_SSL_CERT_FILE", str(tls_ca))
    env.update(
        {
            # Flow runs start as `python -m deployments.engine_start` (bringup.ENGINE_COMMAND):
            # this one.
            "PATH": os.pathsep.join([str(_BIN), env.get("PATH", os.defpath)]),
            "PACKSHOT_HOME": str(settings.home.expanduser().resolve()),
            "PREFECT_API_URL": api_url,
            "PREFECT_HOME": str(settings.prefect_home),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_SERVER_EPHEMERAL_ENABLED": "false",
            "PREFECT_LOGGING_EXTRA_LOGGERS": "packshot",
            # SQLite under a worker, a webhook and flow runs: wait for the lock, don't fail.
            "PREFECT_SERVER_DATABASE_TIMEOUT": "60",
            # While its database restarts, the Prefect server answers 500, which Prefect's
            # client does not retry by default: a flow run starting then crashed in its first
            # call and ran again. Retried (5 times, backing off), it rides the restart out.
            "PREFECT_CLIENT_RETRY_EXTRA_CODES": "500",
            "PYTHONUNBUFFERED": "1",
        }
    )
    # The dispatcher queues a burst's runs behind the work pool's slots by design: Late should
    # mean "no worker took it for minutes" (workers down), not "a burst is being worked off".
    # Marking every waiting run Late also costs the server a state write per run, each 5 s.
    env.setdefault("PREFECT_SERVER_SERVICES_LATE_RUNS_AFTER_SECONDS", "300")
    # A short poll keeps pickup latency low (Prefect's default is 10 s). Each poll costs the
    # server about 25 ms of CPU: at 1 s an idle stack's server uses 3.1 s a minute, at 0.5 s
    # 4.7 s; set it in the environment to trade one for the other.
    env.setdefault("PREFECT_WORKER_QUERY_SECONDS", "1")
    # Task runs reach the server as events, and its recorder writes them one transaction per
    # event by default (batch size 1): a third of the server's CPU per photo, and a write
    # lock taken ~30 times per photo. In batches, flushed at least every second, the Prefect
    # UI shows a task run up to a second later.
    env.setdefault("PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_BATCH_SIZE", "100")
    env.setdefault("PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_FLUSH_INTERVAL", "1")
    env.update(extra or {})
    return env


class Stack:
    """The stack's services on this machine: start, supervise, stop."""

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
        # The server started here requires credentials; one started elsewhere has its own.
        self.auth = ensure_auth_string(settings) if self.own_server else auth_string(settings)
        # Marks every process the stack starts, so that stop() finds them all (proctree).
        self.instance = uuid.uuid4().hex
        own = {proctree.MARKER: self.instance}
        if self.auth:
            own["PREFECT_API_AUTH_STRING"] = self.auth
        self.env = stack_env(settings, self.api_url, {**(extra_env or {}), **own})
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
        # Set once supervise() runs (and left set): a signal then only asks it to return.
        self.supervising = False

    def _services(self, wanted: set[str], workers: int, limit: int) -> list[Service]:
        services = []
        if self.own_server:
            services.append(self._prefect_server())
        if "worker" in wanted:
            for number in range(1, workers + 1):
                services += self._worker(number, workers, limit)
        if "webhook" in wanted and (ROOT / "webhook" / "app.py").exists():
            services += [self._webhook(), self._dispatcher()]
        if "dashboard" in wanted and (ROOT / "dashboard" / "streamlit_app.py").exists():
            services.append(self._dashboard())
        return services

    def _prefect_server(self) -> Service:
        s = self.settings
        argv = server_argv(s.bind, s.prefect_port)
        assert self.auth is not None  # ensure_auth_string gave one (own_server)
        env = server_env(s, self.auth, self.ui_url)
        if s.prefect_database_url is not None:
            env["PREFECT_API_DATABASE_CONNECTION_URL"] = s.prefect_database_url.get_secret_value()
        return Service("prefect", argv, health_url(self.api_url), env=env, nice=s.server_nice)

    def _worker(self, number: int, count: int, limit: int) -> list[Service]:
        """A worker, and the warm engine its flow runs are forked from (Linux)."""
        name = "worker" if count == 1 else f"worker-{number}"
        argv = [
            str(_BIN / "prefect"),
            *("worker", "start", "--pool", WORK_POOL, "--type", "process"),
            *("--limit", str(limit), "--name", f"{socket.gethostname()}-{name}"),
        ]
        env = worker_env(self.settings)
        nice = self.settings.worker_nice
        batch = nice > 0  # 0: the pipeline competes with the webhook as an equal
        if not (self.settings.warm_engine and warm_engine.available()):
            return [Service(name, argv, env=env, nice=nice, batch=batch)]
        # Both get the same environment: the engine forks only for runs that have its own.
        env[SOCKET_ENV] = f"packshot-{self.instance}-{name}"
        engine = [str(_BIN / "python"), "-m", "deployments.warm_engine"]
        engine += ["--socket", env[SOCKET_ENV], "--preload", ",".join(warm_engine.FLOW_MODULES)]
        return [
            Service(f"{name}-engine", engine, env=dict(env), nice=nice, batch=batch),
            Service(name, argv, env=env, nice=nice, batch=batch),
        ]

    def _webhook(self) -> Service:
        s = self.settings
        argv = [
            str(_BIN / "python"),
            *("-m", "uvicorn", "webhook.app:create_app", "--factory"),
            *("--host", s.bind, "--port", str(s.webhook_port), "--no-access-log"),
        ]
        # The dispatcher, recovery and event sender run in their own process (below): the
        # webhook's interpreter only answers requests, however busy the machine is.
        off = {"PACKSHOT_DISPATCHER_ENABLED": "false", "PACKSHOT_NOTIFY_SENDER_ENABLED": "false"}
        return Service("webhook", argv, f"{self.webhook_url}/healthz", env=off)

    def _dispatcher(self) -> Service:
        argv = [str(_BIN / "packshot"), "dispatcher"]
        return Service("dispatcher", argv, nice=self.settings.server_nice)

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

    @contextmanager
    def held(self, name: str) -> Iterator[Service]:
        """Stop service ``name`` and keep it down (not revived) until the block ends.

        For outage drills: the block sees the stack as it is while that service is gone; the
        service is started again, and waited for, when the block ends.
        """
        service = self.service(name)
        with self._lifecycle:
            service.held = True
            service.stop()
        try:
            yield service
        finally:
            with self._lifecycle:
                service.held = False
                service.restart_at = None
                if not self._stopping.is_set():
                    service.start(self.env)
            if service.health_url and not self._stopping.is_set():
                wait_healthy(service.health_url, 120, service)

    def start(self) -> None:
        """Start every service in order; bring the Prefect server up to date first."""
        if not self.own_server:
            wait_healthy(health_url(self.api_url), 120)
        elif local_server.stop(self.settings):
            # It holds the port; this server also runs the UI, the services and the workers'
            # deployments, on the same database.
            log.info("stopped the background Prefect server of `packshot process`")
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
        """Block until Ctrl-C (or ``request_stop``); restart services that exit. Returns 0.

        A service that exits is started again at once, or, after ``CrashWindow.limit`` restarts
        within its window, when the window allows; the other services keep running meanwhile.
        """
        self.supervising = True
        while not self._stopping.wait(1.0):
            for service in self.services:
                with self._lifecycle:
                    if self._stopping.is_set():
                        return 0
                    self._revive(service, time.monotonic())
        return 0

    def _revive(self, service: Service, now: float) -> None:
        if service.alive() or service.held:
            return
        if service.restart_at is None:  # it has just exited
            code = service.process.returncode if service.process else None
            service.restart_at = service.crashes.next_start(now)
            wait = service.restart_at - now
            if wait > 0:
                log.error(
                    "%s exited (%s) and keeps crashing: next start in %.0f s; "
                    "the other services keep running",
                    service.name,
                    code,
                    wait,
                )
            else:
                log.warning("%s exited (%s); restarting", service.name, code)
        if now >= service.restart_at:
            service.crashes.restarted(now)
            service.restart_at = None
            service.start(self.env)

    def request_stop(self) -> None:
        """Ask ``supervise`` to return (from a signal handler)."""
        self._stopping.set()

    def stop(self) -> None:
        """Stop every service, newest first; the flow runs end before the workers stop."""
        self._stopping.set()
        with self._lifecycle:
            runs_ended = False
            for service in reversed(self.services):
                if not runs_ended and service.name not in ("webhook", "dispatcher", "dashboard"):
                    # The dispatcher is gone (no new runs), the workers and the server still run.
                    self._end_flow_runs()
                    runs_ended = True
                service.stop()
                log.info("%s stopped", service.name)
            self._sweep()

    def _end_flow_runs(self) -> None:
        try:
            end_flow_runs(self.instance, self.api_url, self.auth, self.settings.stop_grace_s)
        except Exception:  # logged with its traceback; stopping goes on, _sweep ends them
            log.exception("could not cancel the running flow runs")

    def _sweep(self) -> None:
        """Kill whatever the stack started and is still running (a grandchild, an orphan)."""
        left = proctree.marked(self.instance)
        if left:
            log.warning("%d process(es) started by the stack still ran: killed", len(left))
            proctree.kill(left)
            proctree.wait_gone(left, 5)

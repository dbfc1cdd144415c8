"""One supervised child process of `packshot up`, and when a crashed one may start again."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
from collections import deque
from dataclasses import dataclass, field

from core.priority import lower_priority
from deployments.bringup import ROOT
from deployments.health import wait_until_ok

__all__ = ["CrashWindow", "Service", "wait_healthy"]

log = logging.getLogger("packshot.stack")
_OUTPUT_LOCK = threading.Lock()


@dataclass
class CrashWindow:
    """When a crashed service may start again: at once, unless it crashed too often lately.

    At most ``limit`` restarts within ``window_s`` seconds; a further crash waits until the
    oldest of those leaves the window. Crashes long ago do not count.
    """

    limit: int = 3
    window_s: float = 600.0
    _restarts: deque[float] = field(default_factory=deque)

    def next_start(self, now: float) -> float:
        """The monotonic time at which a service that just exited may start again."""
        while self._restarts and now - self._restarts[0] >= self.window_s:
            self._restarts.popleft()
        if len(self._restarts) < self.limit:
            return now
        return self._restarts[0] + self.window_s

    @property
    def restarts(self) -> int:
        """Restarts still in the window (as of the last ``next_start``)."""
        return len(self._restarts)

    def restarted(self, now: float) -> None:
        """Count a restart made at ``now``."""
        self._restarts.append(now)


@dataclass
class Service:
    """One supervised child process."""

    name: str
    argv: list[str]
    health_url: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    # Added to the child's CPU niceness at start; its own children (flow runs) inherit it.
    nice: int = 0
    # Pipeline work: scheduled as batch work too (core.priority), also inherited.
    batch: bool = False
    crashes: CrashWindow = field(default_factory=CrashWindow)
    restart_at: float | None = None
    # Stopped on purpose (Stack.held): the supervisor leaves it down until released.
    held: bool = False
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
        if self.nice or self.batch:
            # Set from here, not in the child (a pre-exec hook is unsafe with threads): the
            # child is still importing, long before it starts any flow run that inherits it.
            lower_priority(self.process.pid, self.nice, batch=self.batch)
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
        # What is left of its group; flow runs sit in groups of their own (Stack.stop).
        _signal_group(group, signal.SIGKILL)
        self.process.wait(timeout=5)


def _signal_group(group: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(group, sig)


def wait_healthy(url: str, timeout: float, service: Service | None = None) -> None:
    """Poll ``url`` until it answers 200 (``deployments.health.wait_until_ok``)."""
    if service is None:
        wait_until_ok(url, timeout)
    else:
        wait_until_ok(url, timeout, name=service.name, alive=service.alive)

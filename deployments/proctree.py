"""The processes a stack started, found wherever they are, and ended for good (Linux ``/proc``).

Every child of `packshot up` carries a marker in its environment (``MARKER``), and so does
everything those children start: the flow-run processes of a worker too, although each sits
in its own process group (so signalling the worker's group misses them) and may outlive its
worker (then its parent is init). Reading the marker from ``/proc/PID/environ`` finds them
all; a process is identified by its pid *and* start time, so a recycled pid is never hit.
Elsewhere than Linux nothing is found, and stopping falls back to the process groups.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["FLOW_RUN_ID", "MARKER", "Proc", "alive", "kill", "marked", "wait_gone"]

MARKER = "PACKSHOT_STACK_INSTANCE"
# Set by Prefect's worker in the environment of each flow-run process it starts.
FLOW_RUN_ID = "PREFECT__FLOW_RUN_ID"
_PROC = Path("/proc")


@dataclass(frozen=True)
class Proc:
    """One process: pid, start time (clock ticks since boot) and the flow run it executes."""

    pid: int
    start: int
    flow_run_id: str | None = None


def _start_time(pid: int) -> int | None:
    """Start time of ``pid``, or None when it is gone or a zombie."""
    try:
        stat = (_PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    # fields[0] is field 3 of proc(5) (state), so field 22 (starttime) is fields[19].
    return None if fields[0] in ("Z", "X") else int(fields[19])


def _environ(pid: int) -> dict[str, str]:
    try:
        raw = (_PROC / str(pid) / "environ").read_bytes()
    except OSError:  # gone, or another user's process
        return {}
    pairs = (entry.partition(b"=") for entry in raw.split(b"\0") if entry)
    return {
        name.decode(errors="replace"): value.decode(errors="replace") for name, _, value in pairs
    }


def marked(instance: str) -> list[Proc]:
    """Live processes (not this one) whose environment has ``MARKER=instance``."""
    found: list[Proc] = []
    if not _PROC.is_dir():
        return found
    for entry in _PROC.iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        pid = int(entry.name)
        env = _environ(pid)
        if env.get(MARKER) != instance:
            continue
        start = _start_time(pid)
        if start is not None:
            found.append(Proc(pid, start, env.get(FLOW_RUN_ID)))
    return found


def alive(proc: Proc) -> bool:
    """True while ``proc`` (this pid with this start time) runs."""
    return _start_time(proc.pid) == proc.start


def kill(procs: list[Proc], sig: signal.Signals = signal.SIGKILL) -> None:
    """Send ``sig`` to each of ``procs`` that is still the same process."""
    for proc in procs:
        if alive(proc):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(proc.pid, sig)


def wait_gone(procs: list[Proc], timeout: float) -> list[Proc]:
    """Wait up to ``timeout`` seconds for ``procs`` to end; those still running."""
    deadline = time.monotonic() + timeout
    running = [p for p in procs if alive(p)]
    while running and time.monotonic() < deadline:
        time.sleep(0.2)
        running = [p for p in running if alive(p)]
    return running

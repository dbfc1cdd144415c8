"""CPU priority that holds on Linux desktops and servers alike: niceness, its autogroup, and
the batch scheduling policy.

With ``sched_autogroup`` (on by default in most distributions) the kernel shares the CPU
between sessions first and applies a process's niceness only within its own session. Our
supervised services, and the flow-run processes a Prefect worker starts, each lead a session of
their own, so a niceness set the usual way changes nothing against the webhook. The session's
autogroup niceness is what counts; a process may always lower its own group's priority.

Pipeline work is also scheduled as batch work (``SCHED_BATCH``): the kernel then takes it for
CPU-bound and does not let it preempt a task that woke up, so the webhook, woken by a delivery,
gets a core sooner. Niceness alone left the webhook's p99 with the worker busy at 43–105 ms in
four runs of ``benchmarks/webhook.py --with-stack``; with the workers' runs batch as well,
31–39 ms in four runs interleaved with them (2 vCPUs, Linux 6.18). The policy, like the
niceness, is inherited by the processes a worker starts (or its warm engine forks).
"""

from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path

__all__ = ["autogroup_nice", "is_batch", "lower_priority", "match_autogroup"]


def lower_priority(pid: int, nice: int, *, batch: bool = False) -> None:
    """Add ``nice`` to process ``pid``'s niceness, and give its autogroup the result; with
    ``batch``, also schedule it as batch work where the OS has that policy (Linux)."""
    current = os.getpriority(os.PRIO_PROCESS, pid)
    target = min(current + nice, 19)
    os.setpriority(os.PRIO_PROCESS, pid, target)
    _set_autogroup(pid, target)
    if batch and hasattr(os, "SCHED_BATCH"):
        # Any process may move its own kind from the normal policy to batch; a sandbox that
        # refuses leaves the niceness, which still holds.
        with contextlib.suppress(OSError):
            os.sched_setscheduler(pid, os.SCHED_BATCH, os.sched_param(0))


def is_batch(pid: int) -> bool:
    """True if process ``pid`` is scheduled as batch work."""
    return hasattr(os, "SCHED_BATCH") and os.sched_getscheduler(pid) == os.SCHED_BATCH


def match_autogroup() -> None:
    """Give this process's autogroup the niceness this process has (inherited from a worker).

    Only for a process that leads its own session (a flow run started by a worker): the
    autogroup is then this process and its children alone.
    """
    nice = os.getpriority(os.PRIO_PROCESS, 0)
    if nice > 0 and os.getsid(0) == os.getpid():
        _set_autogroup(os.getpid(), nice)


def _set_autogroup(pid: int, nice: int) -> None:
    group = Path(f"/proc/{pid}/autogroup")
    # No autogroups (other kernels, containers without /proc): plain niceness already applies.
    with contextlib.suppress(OSError):
        if group.exists():
            group.write_text(str(nice))


def autogroup_nice(pid: int, proc: Path = Path("/proc")) -> int | None:
    """The niceness of ``pid``'s autogroup, or None without autogroups."""
    try:
        text = (proc / str(pid) / "autogroup").read_text()
    except OSError:
        return None
    # "/autogroup-123 nice 5"; sandboxed kernels may show the file but leave it empty.
    found = re.search(r"\bnice\s+(-?\d+)", text)
    return int(found.group(1)) if found else None

"""The watchdog of the background Prefect server (deployments.local_server): stdlib only.

``python -m deployments.watchdog CONFIG`` runs the server command named in ``CONFIG`` (JSON:
``argv``, ``state``, ``lease``, ``idle_s``) with this process's environment, which the
starting command prepared (the server's settings and credentials travel there, never on a
command line). It stops the server when the state file has not been touched for ``idle_s``
seconds and no command holds the lease, when the state file is removed, or on SIGTERM.

It imports nothing of Packshot's on purpose: the server's start is the wait of a first
``packshot process``, and every import here would come before it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

log = logging.getLogger("packshot.local_server")


def in_use(lease: Path) -> bool:
    """True while a command holds the lease (shared); the watchdog probes it exclusively."""
    with lease.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
        return False


def serve(argv: list[str], state: Path, lease: Path, idle_s: float) -> int:
    """Run ``argv`` until the lease runs out, it exits, or SIGTERM; returns 0."""
    server = subprocess.Popen(argv)
    stopping: list[int] = []
    signal.signal(signal.SIGTERM, lambda signum, _frame: stopping.append(signum))
    try:
        while not stopping and server.poll() is None:
            try:
                unused = time.time() - state.stat().st_mtime
            except OSError:  # the state file is gone: someone stopped us
                break
            if unused > idle_s and not in_use(lease):
                log.info("unused for %.0f s: stopping the background Prefect server", unused)
                break
            time.sleep(1.0)
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        _forget(state)
    return 0


def _forget(state: Path) -> None:
    """Remove the state file if it still names this watchdog (a successor may own it)."""
    with contextlib.suppress(OSError, ValueError, KeyError):
        if json.loads(state.read_text())["pid"] == os.getpid():
            state.unlink()


def main(config: str) -> int:
    """Entry point: ``config`` is the JSON the starting command wrote (see the module doc)."""
    settings = json.loads(config)
    return serve(
        [str(part) for part in settings["argv"]],
        Path(settings["state"]),
        Path(settings["lease"]),
        float(settings["idle_s"]),
    )


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    raise SystemExit(main(sys.argv[1]))

"""The process of a background Prefect server (deployments.local_server): stdlib only until told.

``packshot process`` starts it first thing (``spawn``), before the command has read its own
settings and so before it knows whether it needs a server: reading them takes the command about
0.2 s (pydantic), and the server's start is what a first command waits for. Meanwhile the
process imports the libraries the server needs that read no settings (``_PRELOAD``). Then it
reads one line on stdin:

* nothing (the command found a stack, or this home's server already running, and closed the
  pipe, or ended): it exits;
* the JSON configuration (``configure``): the server's environment (its settings and
  credentials travel here, never on a command line), host and port, the log file, the state and
  lease files and the idle time. It sends its output to the log and serves Prefect's API
  (``deployments.prefect_server.serve``) until SIGTERM, or until the server has gone unused: the
  state file's modification time (renewed by each command) is older than ``idle_s`` and no
  command holds the lease (a shared lock while it runs), or the state file is gone.

One process, not a watchdog with the server as its child: one interpreter start less before
the server's own.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib
import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

__all__ = ["configure", "idle_reason", "in_use", "main", "release", "spawn"]

# Imported by the Prefect server. None reads a Prefect setting when imported: the configuration
# sets only those (PREFECT_*), and the process already has the command's other variables.
_PRELOAD = (
    "sqlalchemy.ext.asyncio",
    "sqlalchemy.orm",
    "aiosqlite",
    "fastapi",
    "uvicorn",
    "httpx",
    "docket",
    "alembic",
)


def spawn() -> subprocess.Popen[bytes]:
    """Start a server process on standby: it waits for ``configure`` or ``release``.

    It outlives the command (its own session), keeps the command's working directory (the same
    ``.env`` and relative paths) and environment, and writes nothing until configured.
    """
    return subprocess.Popen(
        [sys.executable, "-m", "deployments.server_process"],
        cwd=Path.cwd(),
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def configure(process: subprocess.Popen[bytes], config: dict[str, object]) -> None:
    """Tell a process on standby what to serve (see the module's doc for ``config``)."""
    assert process.stdin is not None  # spawned with a pipe
    with process.stdin:
        process.stdin.write(json.dumps(config).encode() + b"\n")


def release(process: subprocess.Popen[bytes]) -> None:
    """End a process on standby that no command needs: killed, not left to finish its imports."""
    with contextlib.suppress(ProcessLookupError):
        process.kill()
    process.wait()
    if process.stdin is not None:
        process.stdin.close()


def in_use(lease: Path) -> bool:
    """True while a command holds the lease (shared); probed here exclusively."""
    with lease.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
        return False


def idle_reason(state: Path, lease: Path, idle_s: float) -> str | None:
    """Why the server should stop now, or None while it is (or may soon be) in use."""
    try:
        unused = time.time() - state.stat().st_mtime
    except OSError:
        return "its state file is gone"
    if unused > idle_s and not in_use(lease):
        return f"unused for {unused:.0f} s"
    return None


def main() -> int:
    """Entry point: preload, wait for the configuration, then serve (see the module's doc)."""
    from core.heap import pause_collections  # the gc module only

    pause_collections()  # until the server's app is built (deployments.prefect_server)
    for name in _PRELOAD:
        with contextlib.suppress(ImportError):  # the server's own import will report it
            importlib.import_module(name)
    line = sys.stdin.readline()
    if not line.strip():
        return 0
    config = json.loads(line)
    os.environ.update(config["env"])
    _output_to(Path(config["log"]))
    _log_ours()
    state, lease, idle_s = Path(config["state"]), Path(config["lease"]), float(config["idle_s"])
    from deployments.prefect_server import serve

    def unused() -> str | None:
        return idle_reason(state, lease, idle_s)

    try:
        serve(config["host"], int(config["port"]), stop_when=unused)
    finally:
        _forget(state)
    return 0


def _output_to(log_file: Path) -> None:
    """Send this process's stdout and stderr (and so the server's log) to ``log_file``."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
        os.dup2(fd, stream.fileno())
    os.close(fd)


def _log_ours() -> None:
    """Packshot's own lines (why the server stops) at INFO; the libraries' as they configure."""
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    ours = logging.getLogger("packshot")
    ours.addHandler(handler)
    ours.setLevel(logging.INFO)
    ours.propagate = False


def _forget(state: Path) -> None:
    """Remove the state file if it still names this process (a successor may own it)."""
    with contextlib.suppress(OSError, ValueError, KeyError):
        if json.loads(state.read_text())["pid"] == os.getpid():
            state.unlink()


if __name__ == "__main__":
    raise SystemExit(main())

"""The flow-run command: a process forked from the worker's warm engine, else a fresh interpreter.

A process worker starts every flow run as a new command (``bringup.ENGINE_COMMAND``):
``python -m deployments.engine_start prefect.engine``. A fresh ``python -m prefect.engine``
spends 2 s of CPU importing Prefect and the pipeline before the run's first API call, once per
flow run. When the worker's environment names a warm engine (``PACKSHOT_ENGINE_SOCKET``, set by
``packshot up``; ``deployments.warm_engine``), this command asks it for a forked copy of an
interpreter that has imported all of that already, hands it this process's standard streams,
working directory and environment, and stands in for it until it ends:

- signals this process receives (the worker's SIGTERM on cancellation, SIGINT) are passed on;
- it exits as the flow-run process did (its code, or killed by the same signal);
- if this process is killed outright (SIGKILL), the forked process ends too: it watches the
  connection to this one (and holds it open while it runs, so this process waits for it
  even if the engine itself stops).

When no warm engine is named, it cannot be reached, or it refuses (an environment it was not
started with: see ``warm_engine.differing``), this process becomes ``python -m MODULE`` by
``exec``, exactly the command it replaces. It imports only the standard library: it runs
before every flow run.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import struct
import sys
from pathlib import Path
from typing import NoReturn

__all__ = ["HEADER", "RELAYED_SIGNALS", "SOCKET_ENV", "exit_as", "main", "socket_address"]

SOCKET_ENV = "PACKSHOT_ENGINE_SOCKET"
RELAYED_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT)
# Replies are short JSON lines; a request is a length-prefixed JSON document.
HEADER = struct.Struct("!I")


def socket_address(name: str) -> str:
    """The abstract-namespace address of warm engine ``name`` (Linux; no file to clean up)."""
    return "\0" + name


def main() -> NoReturn:
    """``python -m deployments.engine_start MODULE [ARGS…]``: run MODULE as a flow-run process."""
    if len(sys.argv) < 2:
        sys.exit("usage: python -m deployments.engine_start MODULE [ARGS...]")
    module, args = sys.argv[1], sys.argv[2:]
    name = os.environ.get(SOCKET_ENV)
    if name:
        code = _run_forked(name, module, args)
        if code is not None:
            exit_as(code)
    os.execv(sys.executable, [sys.executable, "-m", module, *args])


class _Relay:
    """Passes the signals this process gets to the forked process, once its pid is known."""

    def __init__(self) -> None:
        self.pid: int | None = None
        self.pending: list[int] = []
        for signum in RELAYED_SIGNALS:
            signal.signal(signum, self._on_signal)

    def _on_signal(self, signum: int, _frame: object) -> None:
        if self.pid is None:
            self.pending.append(signum)
        else:
            _kill(self.pid, signum)

    def attach(self, pid: int) -> None:
        self.pid = pid
        for signum in self.pending:
            _kill(pid, signum)
        self.pending.clear()

    @staticmethod
    def restore() -> None:
        for signum in RELAYED_SIGNALS:
            signal.signal(signum, signal.SIG_DFL)


def _run_forked(name: str, module: str, args: list[str]) -> int | None:
    """The forked run's exit code (negative: killed by that signal); None to run it here."""
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        conn.connect(socket_address(name))
    except OSError as exc:
        conn.close()
        _note(f"warm engine {name!r} not reachable ({exc.strerror or exc}): a fresh process")
        return None
    relay = _Relay()
    request = json.dumps(
        {"module": module, "args": args, "cwd": str(Path.cwd()), "env": dict(os.environ)}
    ).encode()
    with conn:
        try:
            socket.send_fds(conn, [HEADER.pack(len(request))], [0, 1, 2])
            conn.sendall(request)
        except OSError as exc:
            relay.restore()
            _note(
                f"warm engine {name!r} dropped the request ({exc.strerror or exc}): a fresh process"
            )
            return None
        return _follow(conn, relay)


def _follow(conn: socket.socket, relay: _Relay) -> int | None:
    """Read the engine's replies: the forked pid (or a refusal), then its exit code."""
    lines = conn.makefile("r", encoding="utf-8")
    for line in lines:
        reply = json.loads(line)
        if "refused" in reply:
            relay.restore()
            _note(f"warm engine refused the run ({reply['refused']}): a fresh process")
            return None
        if "pid" in reply:
            relay.attach(int(reply["pid"]))
        if "exit" in reply:
            return int(reply["exit"])
    if relay.pid is None:
        relay.restore()
        _note("warm engine closed the connection before forking: a fresh process")
        return None
    # The forked process holds this connection open until it ends, so it has ended; the engine
    # that would have reported how is gone.
    _note("warm engine stopped during the run: the run's exit code is unknown")
    return 1


def _kill(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)


def exit_as(code: int) -> NoReturn:
    """Exit with ``code`` now, or be killed by that signal (``code`` < 0, as
    ``os.waitstatus_to_exitcode`` reports it); the standard streams are flushed first."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # closed by the reader: nothing to lose
            stream.flush()
    if code < 0:
        signal.signal(-code, signal.SIG_DFL)
        os.kill(os.getpid(), -code)
        code = 128 - code  # not reached unless the signal is ignored or blocked
    os._exit(code)


def _note(message: str) -> None:
    sys.stderr.write(f"packshot engine_start: {message}\n")
    sys.stderr.flush()


if __name__ == "__main__":
    main()

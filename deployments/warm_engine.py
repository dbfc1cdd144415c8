"""A worker's warm engine: flow-run processes forked from an interpreter that has imported it all.

Each flow run of a process worker used to start a new interpreter that imported Prefect and the
pipeline (2 s of CPU here) before its first API call: once per photo, or once per batch. In a
burst that start delays both of a machine's flow runs at once. ``packshot up`` starts one warm
engine beside each worker (``python -m deployments.warm_engine``): it imports the module a
flow run executes (``prefect.engine``) and the flow code (``--preload``), then waits on a Unix
socket. The flow-run command (``deployments.engine_start``) connects, and the engine forks a
child that becomes the run's process: it takes the command's standard streams, working
directory and environment, starts its own session and runs the module as ``__main__``. The
engine reports the child's pid and, when it ends, its exit status, to the command.

Why it is safe to fork here:

- The engine runs no threads and opens no connections: it imports, then serves with one
  selector. It refuses to start when an import started a Python thread.
- A forked run is the same program as a fresh one only if it sees the same settings. Prefect
  and Packshot read their settings when their modules are imported, so the engine forks only
  for a command whose environment equals its own, except Prefect's per-run variables
  (``PREFECT__*``: the flow-run id, the control channel, …). A worker hands its runs its own
  environment plus the Prefect settings it has set (``Settings.to_environment_variables``); the
  engine adds the same to its own at start, so the two match. Anything else that differs makes
  it refuse (naming the variables, never their values) and the command starts a fresh
  interpreter instead.
- Only processes of this user may connect (``SO_PEERCRED``): the socket starts code as the
  engine's user. Its address is in Linux's abstract namespace, named after the stack instance.

The engine stops when asked (SIGTERM: no new forks; it ends once its children have) or when the
process that started it is gone.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import gc
import importlib
import json
import logging
import os
import runpy
import selectors
import signal
import socket
import struct
import sys
import threading
import traceback
import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import NoReturn

from core.priority import match_autogroup
from deployments.engine_start import HEADER, RELAYED_SIGNALS, exit_as, socket_address
from deployments.proctree import FLOW_RUN_ID

__all__ = ["FLOW_MODULES", "PER_RUN_PREFIX", "available", "differing", "main", "serve"]

log = logging.getLogger("packshot.warm_engine")

# Prefect's worker sets these per flow run (the run id, the control channel's port and token,
# the deployment name): they are not settings and may differ from the engine's.
PER_RUN_PREFIX = "PREFECT__"
# What a flow run of the pipeline imports besides prefect.engine: the flow code, with the steps,
# the image code and the model runtime it imports; and FastAPI's encoder, which Prefect imports
# the first time it serializes a flow's parameters (creating a batch's first subflow run): about
# 0.25 s in every forked run otherwise, on the way to its first step.
FLOW_MODULES = ("prefect.flow_engine", "flows.batch", "fastapi.encoders")
_MAX_REQUEST = 1 << 20  # an environment, a path and a few arguments
_PARENT_CHECK_S = 1.0
_REQUEST_TIMEOUT_S = 5.0


def available() -> bool:
    """True where the engine runs: Linux (abstract sockets, ``pidfd_open``)."""
    return sys.platform == "linux" and hasattr(os, "pidfd_open")


def differing(own: Mapping[str, str], theirs: Mapping[str, str]) -> list[str]:
    """Names of the variables, besides Prefect's per-run ones, that differ between two
    environments (set in one only, or to another value)."""
    names = (own.keys() | theirs.keys()) - {n for n in theirs if n.startswith(PER_RUN_PREFIX)}
    return sorted(n for n in names if own.get(n) != theirs.get(n))


@dataclass
class _Request:
    module: str
    args: list[str]
    cwd: str
    env: dict[str, str]
    fds: list[int]


@dataclass
class _Child:
    pid: int
    pidfd: int
    conn: socket.socket


def main(argv: list[str] | None = None) -> None:
    """``python -m deployments.warm_engine --socket NAME [--module M] [--preload A,B]``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--socket", required=True, help="abstract socket name to listen on")
    parser.add_argument("--module", default="prefect.engine", help="the module a run executes")
    parser.add_argument("--preload", default="", help="more modules to import, comma-separated")
    args = parser.parse_args(argv)
    # Its own handler, not the root logger's: a forked run must start with Prefect's logging
    # configuration only, as a fresh process does.
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False
    preload = [args.module, *filter(None, args.preload.split(","))]
    serve(args.socket, args.module, preload)


def serve(name: str, module: str, preload: Iterable[str]) -> None:
    """Import ``preload``, then fork a process running ``module`` for each request on ``name``."""
    # No collection in the engine: it would leave freed holes in pages its runs share. Frozen
    # before forking, the imported objects are left out of the runs' collections too, which
    # would otherwise walk (and so copy) every page of them (the gc module's advice for fork).
    gc.disable()
    _adopt_prefect_settings()
    for each in preload:
        importlib.import_module(each)
    threads = [t.name for t in threading.enumerate() if t is not threading.main_thread()]
    if threads:
        raise SystemExit(f"warm engine: importing {list(preload)} started threads {threads}")
    gc.freeze()
    _Engine(name, module).run()


def _adopt_prefect_settings() -> None:
    """Add the Prefect settings this environment sets to it, as a worker does for its runs."""
    from prefect.context import refresh_global_settings_context
    from prefect.settings import get_current_settings

    os.environ.update(get_current_settings().to_environment_variables(exclude_unset=True))
    refresh_global_settings_context()


class _Engine:
    def __init__(self, name: str, module: str) -> None:
        self.module = module
        self.env = dict(os.environ)
        self.parent = os.getppid()
        self.stopping = False
        self.children: dict[int, _Child] = {}  # by pidfd
        self.selector = selectors.DefaultSelector()
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(socket_address(name))
        self.listener.listen(64)
        self.selector.register(self.listener, selectors.EVENT_READ)
        signal.signal(signal.SIGTERM, self._on_stop)
        log.info("warm engine %r ready: %s and %d modules imported", name, module, len(sys.modules))

    def _on_stop(self, _signum: int, _frame: object) -> None:
        self.stopping = True

    def run(self) -> None:
        while not (self.stopping and not self.children):
            if os.getppid() != self.parent:
                log.info("warm engine: the process that started it is gone; stopping")
                break
            if self.stopping and self.listener.fileno() >= 0:
                self.selector.unregister(self.listener)
                self.listener.close()
            for key, _ in self.selector.select(_PARENT_CHECK_S):
                if key.fileobj is self.listener:
                    self._accept()
                else:
                    self._reap(self.children.pop(key.fd))

    def _accept(self) -> None:
        conn, _ = self.listener.accept()
        # The engine serves one request at a time: a command that stalls must not stall it.
        conn.settimeout(_REQUEST_TIMEOUT_S)
        try:
            request = self._receive(conn)
        except (OSError, ValueError) as exc:
            log.warning("warm engine: unreadable request: %s", exc)
            conn.close()
            return
        conn.settimeout(None)
        # Read first, refused after: the command learns why instead of finding the door shut.
        reason = "not this user's process" if not _same_user(conn) else self._refusal(request)
        if reason is not None:
            for fd in request.fds:
                os.close(fd)
            _refuse(conn, reason)
            return
        self._fork(conn, request)

    def _receive(self, conn: socket.socket) -> _Request:
        header, fds, _, _ = socket.recv_fds(conn, HEADER.size, 3)
        try:
            if len(header) != HEADER.size or len(fds) != 3:
                raise ValueError("expected a length and three file descriptors")
            (size,) = HEADER.unpack(header)
            if size > _MAX_REQUEST:
                raise ValueError(f"request of {size} bytes")
            body = bytearray()
            while len(body) < size:
                chunk = conn.recv(size - len(body))
                if not chunk:
                    raise ValueError("request cut short")
                body += chunk
            data = json.loads(body)
            try:
                module, args, cwd, env = data["module"], data["args"], data["cwd"], data["env"]
            except (KeyError, TypeError) as exc:
                raise ValueError(f"malformed request ({exc!r} missing)") from None
            return _Request(str(module), [str(a) for a in args], str(cwd), dict(env), fds)
        except BaseException:
            for fd in fds:
                os.close(fd)
            raise

    def _refusal(self, request: _Request) -> str | None:
        if request.module != self.module:
            return f"it runs {self.module}, not {request.module}"
        names = differing(self.env, request.env)
        if names:
            return "environment differs from the engine's in " + ", ".join(names)
        return None

    def _fork(self, conn: socket.socket, request: _Request) -> None:
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        gc.freeze()  # what serving allocated since, too
        pid = os.fork()
        if pid == 0:
            _become_run(self._close_in_child, conn, request)
        for fd in request.fds:
            os.close(fd)
        # `ps` shows a forked run with the engine's command line: this line names it.
        log.info("flow run %r: process %d", request.env.get(FLOW_RUN_ID), pid)
        pidfd = os.pidfd_open(pid)
        self.children[pidfd] = _Child(pid, pidfd, conn)
        self.selector.register(pidfd, selectors.EVENT_READ)
        with contextlib.suppress(OSError):  # the command is gone: its run ends by itself
            conn.sendall(json.dumps({"pid": pid}).encode() + b"\n")

    def _close_in_child(self) -> None:
        self.selector.close()
        self.listener.close()
        for child in self.children.values():
            os.close(child.pidfd)
            child.conn.close()

    def _reap(self, child: _Child) -> None:
        self.selector.unregister(child.pidfd)
        os.close(child.pidfd)
        _, status = os.waitpid(child.pid, 0)
        with contextlib.suppress(OSError), child.conn:
            code = os.waitstatus_to_exitcode(status)
            child.conn.sendall(json.dumps({"exit": code}).encode() + b"\n")


def _same_user(conn: socket.socket) -> bool:
    """The connecting process runs as this one's user (the kernel's peer credentials)."""
    _pid, uid, _gid = struct.unpack(
        "3i", conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    )
    return uid == os.getuid()


def _refuse(conn: socket.socket, reason: str) -> None:
    with contextlib.suppress(OSError), conn:
        conn.sendall(json.dumps({"refused": reason}).encode() + b"\n")


def _become_run(
    close_inherited: Callable[[], None], conn: socket.socket, request: _Request
) -> NoReturn:
    """In the forked child: become the run's process and run its module; never returns."""
    code: int = 1
    try:
        close_inherited()
        gc.enable()
        os.setsid()  # its own session and group, as the worker starts a fresh one
        # A new session is a new autogroup, at niceness 0 whatever this process's: it would
        # take the CPU from the webhook as an equal (core.priority). It gets the worker's.
        match_autogroup()
        for signum in RELAYED_SIGNALS:
            signal.signal(signum, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        for target, fd in enumerate(request.fds):
            os.dup2(fd, target)
            os.close(fd)
        os.chdir(request.cwd)
        os.environ.clear()
        os.environ.update(request.env)
        # The same settings as the engine's (checked), read again for the per-run variables.
        from prefect.context import refresh_global_settings_context

        refresh_global_settings_context()
        _end_with(conn)
        sys.argv = [request.module, *request.args]
        code = _run_module(request.module)
    except KeyboardInterrupt:
        traceback.print_exc()
        code = -signal.SIGINT  # as an interpreter ends on an uncaught KeyboardInterrupt
    except BaseException:  # noqa: BLE001 - whatever happens, the child must not return to serve
        traceback.print_exc()
    _exit(code)


def _end_with(conn: socket.socket) -> None:
    """End this process when the command it stands for is gone (its end of ``conn`` closed)."""

    def watch() -> None:
        with contextlib.suppress(OSError):
            while conn.recv(4096):
                pass
        os.kill(os.getpid(), signal.SIGKILL)

    threading.Thread(target=watch, name="engine-start-watch", daemon=True).start()


def _run_module(module: str) -> int:
    """Run ``module`` as ``__main__``, as ``python -m`` does; its exit code."""
    # runpy warns that the module was imported before (by the engine, on purpose).
    warnings.filterwarnings("ignore", message=".*found in sys.modules", category=RuntimeWarning)
    try:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    except SystemExit as done:
        if done.code is None or isinstance(done.code, int):
            return done.code or 0
        sys.stderr.write(f"{done.code}\n")
        return 1
    return 0


def _exit(code: int) -> NoReturn:
    """Exit as the interpreter would (threads' and exit handlers), without its teardown of the
    heap the engine built for every run."""
    with contextlib.suppress(BaseException):
        threading._shutdown()  # type: ignore[attr-defined]
        atexit._run_exitfuncs()
    exit_as(code)


if __name__ == "__main__":
    main()

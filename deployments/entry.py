"""The ``packshot`` console script: starts what a command will wait for, then runs the CLI.

``packshot process`` needs a Prefect API from its first step. With no stack running, it uses
this home's background server (deployments.local_server), which takes seconds to start. Started
here, before the CLI and Prefect are imported, the server boots on one core while the command
imports, checks its input and loads the model on the other.

Such a command imports with the garbage collector off until its flow's code is loaded
(``core.heap``: about 0.3 s less). It also ends without the interpreter's teardown of the heap
it built (Prefect, the model session): about half a second on a 2-core machine, in which
nothing is written. Exit handlers still run, and the standard streams are flushed, before the
process ends.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import sys
import threading

from core.heap import pause_collections

__all__ = ["main", "prestart"]

log = logging.getLogger("packshot.stack")

# Commands that run a flow in this process and so need a Prefect API.
_FLOW_COMMANDS = frozenset({"process"})


def main() -> None:
    """Console-script entry point."""
    args = sys.argv[1:]
    if args[:1] and args[0] in _FLOW_COMMANDS:
        pause_collections()  # until the flow's code is loaded (deployments.runner)
    prestart(args)
    from deployments.cli import main as cli_main

    try:
        cli_main()
    except SystemExit as done:
        if args[:1] and args[0] in _FLOW_COMMANDS:
            _exit_now(done)
        raise


def _exit_now(done: SystemExit) -> None:
    """End the process with ``done``'s code now: exit handlers run, streams are flushed, and the
    heap is left to the kernel. Returns (for a normal exit) when a thread still works."""
    if isinstance(done.code, str) or any(
        not thread.daemon
        for thread in threading.enumerate()
        if thread is not threading.main_thread()
    ):
        return
    # What the interpreter runs first when it exits: threading's exit hooks (Prefect's event
    # and log workers send what they still hold), then atexit's (logging, Prefect's threads).
    threading._shutdown()  # type: ignore[attr-defined]
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # closed by the reader: nothing to lose
            stream.flush()
    os._exit(done.code or 0)


def prestart(args: list[str]) -> bool:
    """Start the background server now if the command ``args`` will need it; True if it runs.

    Its process starts before anything else is imported, on standby (``server_process``): it
    loads what it can while this command reads its settings, then gets this home's
    configuration, or is ended when a stack (or this home's running server) is found instead.

    Nothing is reported here: a problem (invalid settings, an unwritable home) is the
    command's to report, with its exit code, once it has parsed its arguments.
    """
    if not args or args[0] not in _FLOW_COMMANDS or {"--help", "-h"} & set(args):
        return False
    from deployments import server_process

    standby = server_process.spawn()
    from pydantic import ValidationError

    from core.errors import ConfigurationError
    from core.settings import Settings
    from deployments import local_server
    from deployments.prefect_env import locate_api_url

    try:
        settings = Settings()
        if locate_api_url(settings) is None:  # no stack's (or configured) API
            local_server.start(settings, standby)
            return True
    except (ValidationError, ConfigurationError, OSError) as exc:
        log.debug("background Prefect server not started early: %s", exc)
    server_process.release(standby)
    return False

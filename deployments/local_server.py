"""The Prefect server that one-off commands share (``packshot process``, ``packshot review``).

A Prefect server takes seconds to start, and on a fresh home it first builds its database
(more than a hundred migrations). So the first command that needs one starts it in the
background, on the embedded port and loopback only, with the embedded stack's credentials, and
leaves it running: the next command finds it and does not wait. It stops itself after
``PACKSHOT_LOCAL_SERVER_IDLE_S`` seconds in which no command used it, and ``packshot up`` stops
it before starting its own server (which adds the UI, the background services and workers).

A fresh home's Prefect database starts as a copy of a migrated template that ``make setup``
builds once per installed Prefect version (``build_template``), instead of migrating from
scratch on the first photo.

The server's process (``deployments.server_process``) stops itself: the state file names its
pid and the port, its modification time is renewed by each command, and the process stops when
it has gone unused for the idle time and no command holds the lease.

``packshot process`` starts that process first thing, on standby, before it has even read its
settings (``deployments.entry``); once it has, ``start`` hands it this home's configuration (or
ends it, when a server already runs). The server boots on one core while the command imports
the rest of the CLI and Prefect and prepares on the other.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

from core.settings import Settings
from deployments import server_process
from deployments.prefect_auth import ensure_auth_string, server_env

__all__ = [
    "BackgroundServer",
    "build_template",
    "find",
    "renew",
    "seed_database",
    "start",
    "stop",
    "template_path",
    "used",
]

log = logging.getLogger("packshot.local_server")

_STATE = "background-server.json"
_LOG = "background-server.log"
_LEASE = "background-server.lease"
_BIN = Path(sys.executable).parent

# Not needed to run flows in this process: off, so the server starts sooner and stays idle.
_SERVICES_OFF = (
    "PREFECT_UI_ENABLED",
    "PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED",
    "PREFECT_SERVER_SERVICES_LATE_RUNS_ENABLED",
    "PREFECT_SERVER_SERVICES_FOREMAN_ENABLED",
    "PREFECT_SERVER_SERVICES_CANCELLATION_CLEANUP_ENABLED",
    "PREFECT_SERVER_SERVICES_PAUSE_EXPIRATIONS_ENABLED",
    "PREFECT_SERVER_SERVICES_REPOSSESSOR_ENABLED",
    "PREFECT_SERVER_SERVICES_TRIGGERS_ENABLED",
    # Housekeeping of the home's Prefect database, left to `packshot up`'s server: at start it
    # ran its queries just as the first command's flow began.
    "PREFECT_SERVER_SERVICES_CLEANUP_RECONCILER_ENABLED",
)


@dataclass(frozen=True)
class BackgroundServer:
    """A running background server: its process's pid and the API it serves."""

    pid: int
    api_url: str
    log_file: Path

    def alive(self) -> bool:
        """True while the server's process runs."""
        return _alive(self.pid)


def template_path() -> Path:
    """Where this installation keeps its migrated Prefect database (one per Prefect version)."""
    return Path(sys.prefix) / "share" / "packshot" / f"prefect-{version('prefect')}.db"


def build_template() -> Path:
    """Migrate an empty Prefect database into ``template_path()`` (once per Prefect version)."""
    target = template_path()
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as scratch:
        built = Path(scratch) / "prefect.db"
        env = {
            **os.environ,
            "PREFECT_HOME": scratch,
            "PREFECT_API_DATABASE_CONNECTION_URL": f"sqlite+aiosqlite:///{built}",
        }
        argv = [str(_BIN / "prefect"), "server", "database", "upgrade", "-y"]
        subprocess.run(argv, env=env, check=True, capture_output=True)
        built.replace(target)  # same folder: atomic, a concurrent build finds a whole file
    return target


def seed_database(settings: Settings) -> bool:
    """Copy the template into a home whose Prefect database does not exist yet.

    Only for the embedded SQLite database: a configured database is left to Prefect.
    """
    if settings.prefect_database_url or os.environ.get("PREFECT_API_DATABASE_CONNECTION_URL"):
        return False
    database = settings.prefect_home / "prefect.db"
    template = template_path()
    if database.exists() or not template.is_file():
        return False
    database.parent.mkdir(parents=True, exist_ok=True)
    partial = database.with_suffix(".db.partial")
    shutil.copyfile(template, partial)
    partial.replace(database)
    return True


def find(settings: Settings) -> BackgroundServer | None:
    """The background server of this home, if its process is running."""
    state = settings.prefect_home / _STATE
    try:
        recorded = json.loads(state.read_text())
        pid, port = int(recorded["pid"]), int(recorded["port"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not _alive(pid):
        return None
    return BackgroundServer(pid, f"http://127.0.0.1:{port}/api", settings.prefect_home / _LOG)


def renew(settings: Settings) -> None:
    """Tell the server it is in use (restarts its idle countdown)."""
    with contextlib.suppress(OSError):  # no state file: nothing runs to renew
        os.utime(settings.prefect_home / _STATE)


def start(settings: Settings, standby: subprocess.Popen[bytes] | None = None) -> BackgroundServer:
    """This home's background server: the running one, or one started now (not waited for).

    ``standby`` is a server process already started (``server_process.spawn``) to be configured
    instead of starting one; it is ended if a server already runs.

    Two commands starting at once share one server: the start is serialised by a lock file.
    A server started here and not used within the idle time stops by itself. A running one
    found here counts as used from now: one idle almost the whole time could otherwise stop
    between this call and the caller's lease (``used``).
    """
    with _start_lock(settings):
        running = find(settings)
        if running is None:
            return _spawn(settings, standby)
        if standby is not None:
            server_process.release(standby)
        renew(settings)
        return running


@contextlib.contextmanager
def used(settings: Settings) -> Iterator[BackgroundServer]:
    """This home's background server (see ``start``), held in use for the block: it does not
    count as idle until the block ends."""
    server = start(settings)
    # Shared, for as long as the command runs: the server's process cannot take it exclusively,
    # so it knows the server is in use. The kernel drops it if this process dies.
    with _locked(settings.prefect_home / _LEASE, fcntl.LOCK_SH):
        try:
            yield server
        finally:
            renew(settings)


def _spawn(settings: Settings, standby: subprocess.Popen[bytes] | None) -> BackgroundServer:
    auth = ensure_auth_string(settings)  # generated before the server needs it
    seeded = seed_database(settings)
    log_file = settings.prefect_home / _LOG
    config: dict[str, object] = {
        "env": _server_env(settings, auth, migrate=not seeded),  # credentials: here, not argv
        "host": "127.0.0.1",
        "port": settings.prefect_port,
        "log": str(log_file),
        "state": str(settings.prefect_home / _STATE),
        "lease": str(settings.prefect_home / _LEASE),
        "idle_s": settings.local_server_idle_s,
    }
    process = standby if standby is not None and standby.poll() is None else None
    if process is None:
        process = server_process.spawn()
    server_process.configure(process, config)
    # Written here, not by the server, so the next command under the lock sees it at once.
    _write_state(settings, process.pid)
    api_url = f"http://127.0.0.1:{settings.prefect_port}/api"
    return BackgroundServer(process.pid, api_url, log_file)


def _server_env(settings: Settings, auth: str, *, migrate: bool = True) -> dict[str, str]:
    """What the server adds to the environment it inherits (this command's): its settings.

    ``migrate=False`` for a database copied from this Prefect version's template just now:
    Prefect would load all its migration scripts to find none to run (about 0.08 s of the
    start a first ``packshot process`` waits for).
    """
    env = {
        "PREFECT_HOME": str(settings.prefect_home),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        **server_env(settings, auth, f"http://127.0.0.1:{settings.prefect_port}"),
        **dict.fromkeys(_SERVICES_OFF, "false"),
        "PREFECT_SERVER_SERVICES_DB_VACUUM_ENABLED": "[]",  # no vacuum either (a set of kinds)
        # Block types are for `packshot up`'s server (results storage); runs in a command's
        # own process use none. Registering them takes about a second of every first start.
        "PREFECT_SERVER_REGISTER_BLOCKS_ON_START": "false",
        # Before it checks that setting, Prefect hashes every installed collection's blocks
        # to decide whether to register them again, importing each collection (prefect-aws
        # pulls in boto3): about 0.45 s of every start. Without the memo it only asks the
        # setting above.
        "PREFECT_SERVER_MEMOIZE_BLOCK_AUTO_REGISTRATION": "false",
    }
    if settings.prefect_database_url is not None:
        database = settings.prefect_database_url.get_secret_value()
        env["PREFECT_API_DATABASE_CONNECTION_URL"] = database
    if not migrate:
        env["PREFECT_API_DATABASE_MIGRATE_ON_START"] = "false"
    return env


def stop(settings: Settings, timeout: float = 20.0) -> bool:
    """Stop this home's background server; True if one was running."""
    running = find(settings)
    if running is None:
        return False
    with contextlib.suppress(ProcessLookupError):
        os.killpg(running.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while _alive(running.pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(running.pid, signal.SIGKILL)
    (settings.prefect_home / _STATE).unlink(missing_ok=True)
    return True


def _write_state(settings: Settings, pid: int) -> None:
    state = settings.prefect_home / _STATE
    partial = state.with_suffix(".partial")
    partial.write_text(json.dumps({"pid": pid, "port": settings.prefect_port}))
    partial.replace(state)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process took the pid
        return False
    # A zombie child of this very process (tests start and stop it here) is not running.
    with contextlib.suppress(ChildProcessError):
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    return True


def _start_lock(settings: Settings) -> contextlib.AbstractContextManager[None]:
    settings.prefect_home.mkdir(parents=True, exist_ok=True)
    return _locked(settings.prefect_home / "background-server.lock", fcntl.LOCK_EX)


@contextlib.contextmanager
def _locked(path: Path, mode: int) -> Iterator[None]:
    with path.open("a") as handle:
        fcntl.flock(handle, mode)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    if sys.argv[1:] != ["--template"]:  # make setup
        raise SystemExit("usage: python -m deployments.local_server --template")
    log.info("Prefect database template: %s", build_template())

"""The warm engine and the flow-run command: forked runs behave as the process they replace.

A real engine process serves ``tests.helpers.engine_probe`` (a stand-in for ``prefect.engine``
that reports how it was run); the flow-run command runs as the worker runs it, in a working
directory of its own, with the engine's environment plus per-run variables.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.priority import lower_priority
from deployments.engine_start import SOCKET_ENV, _run_forked
from deployments.warm_engine import differing

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="abstract Unix sockets")

ROOT = Path(__file__).resolve().parents[2]
PROBE = "tests.helpers.engine_probe"
MODULE = ("--module", PROBE)
ENGINE = (sys.executable, "-m", "deployments.warm_engine")
THREAD_ON_IMPORT = ("--preload", "tests.helpers.thread_on_import")


class Engine:
    """A running warm engine and the environment its commands get."""

    def __init__(self, tmp_path: Path) -> None:
        self.name = f"packshot-test-{uuid.uuid4().hex}"
        # Prefect settings of its own only (whatever this test session's are): the engine adds
        # those it finds set to its environment, as a worker adds them to its runs'.
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
        self.env |= {
            "PREFECT_HOME": str(tmp_path / "prefect"),
            SOCKET_ENV: self.name,
            "PYTHONPATH": str(ROOT),
        }
        self.run_env = _as_a_worker_hands_it_on(self.env)
        self.process = subprocess.Popen(
            [*ENGINE, "--socket", self.name, *MODULE],
            env=self.env,
            cwd=tmp_path,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,  # as the stack starts it: its niceness is its own
        )
        # Lowered as the stack lowers a worker's engine (its runs inherit the niceness and
        # the batch policy).
        self.nice = min(os.getpriority(os.PRIO_PROCESS, 0) + 3, 19)
        lower_priority(self.process.pid, 3, batch=True)
        assert self.process.stderr is not None
        ready = self.process.stderr.readline()
        assert "ready" in ready, ready

    def command(
        self, *args: str, cwd: Path, extra: dict[str, str] | None = None
    ) -> subprocess.Popen[str]:
        """Start the flow-run command as Prefect's worker does: its environment with the Prefect
        settings it has set, and per-run variables."""
        env = {**self.run_env, "PREFECT__FLOW_RUN_ID": uuid.uuid4().hex, **(extra or {})}
        return subprocess.Popen(
            [sys.executable, "-m", "deployments.engine_start", PROBE, *args],
            env=env,
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )


def _as_a_worker_hands_it_on(env: dict[str, str]) -> dict[str, str]:
    """``env`` plus the Prefect settings it sets, in a process of its own (as a worker adds them
    to its runs' environment; this test session's Prefect context must not count)."""
    script = (
        "import json, os\n"
        "from prefect.settings import get_current_settings\n"
        "env = get_current_settings().to_environment_variables(exclude_unset=True)\n"
        "print(json.dumps({**os.environ, **env}))"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
    )
    found: dict[str, str] = json.loads(done.stdout)
    return found


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    running = Engine(tmp_path_factory.mktemp("engine"))
    yield running
    running.process.terminate()
    assert running.process.wait(timeout=10) == 0


def _report(command: subprocess.Popen[str]) -> dict[str, object]:
    assert command.stdout is not None
    line = command.stdout.readline()
    assert line, command.stderr.read() if command.stderr else "no output"
    report: dict[str, object] = json.loads(line)
    return report


def _gone(pid: int, timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            return True
        if state == "Z":
            return True
        time.sleep(0.05)
    return False


def test_a_run_is_forked_from_the_engine_with_the_commands_directory_streams_and_arguments(
    engine: Engine, tmp_path: Path
) -> None:
    workdir = tmp_path / "run"
    workdir.mkdir()
    command = engine.command("exit:0", "--flag", cwd=workdir)
    report = _report(command)
    _, err = command.communicate(timeout=30)

    assert command.returncode == 0, err
    assert report["ppid"] == engine.process.pid  # forked by the engine, not started anew
    assert report["sid"] == report["pid"]  # its own session, as the worker's runs have
    # A new session is a new autogroup: it has the engine's niceness too, or the run would
    # take the CPU from the webhook as an equal.
    assert report["nice"] == engine.nice
    assert report["autogroup_nice"] in (engine.nice, None)  # None: no autogroups here
    assert report["batch"]  # and it is batch work, as the engine is
    assert report["cwd"] == str(workdir)
    assert report["argv"] == ["exit:0", "--flag"]
    assert "fresh process" not in err


def test_the_per_run_variables_reach_the_run(engine: Engine, tmp_path: Path) -> None:
    command = engine.command(cwd=tmp_path, extra={"PREFECT__FLOW_RUN_ID": "run-7"})
    report = _report(command)
    command.communicate(timeout=30)

    assert report["ppid"] == engine.process.pid
    assert report["run_id"] == "run-7"


def test_the_runs_exit_code_and_failure_are_the_commands(engine: Engine, tmp_path: Path) -> None:
    failing = engine.command("exit:3", cwd=tmp_path)
    raising = engine.command("raise", cwd=tmp_path)
    _, _ = failing.communicate(timeout=30)
    _, err = raising.communicate(timeout=30)

    assert failing.returncode == 3
    assert raising.returncode == 1
    assert "probe failed on purpose" in err


def test_a_signal_to_the_command_reaches_the_run_and_ends_the_command_the_same_way(
    engine: Engine, tmp_path: Path
) -> None:
    command = engine.command("sleep", cwd=tmp_path)
    run_pid = int(_report(command)["pid"])  # type: ignore[call-overload]

    command.send_signal(signal.SIGTERM)

    assert command.wait(timeout=10) == -signal.SIGTERM
    assert _gone(run_pid)


def test_a_killed_command_takes_its_run_with_it(engine: Engine, tmp_path: Path) -> None:
    command = engine.command("sleep", cwd=tmp_path)
    run_pid = int(_report(command)["pid"])  # type: ignore[call-overload]

    command.kill()  # as a machine's process manager (or the stack's sweep) would
    command.wait(timeout=10)

    assert _gone(run_pid)


def test_another_environment_runs_in_a_fresh_process_and_names_only_the_variable(
    engine: Engine, tmp_path: Path
) -> None:
    command = engine.command(cwd=tmp_path, extra={"SOME_TOKEN": "s3cr3t-value"})
    report = _report(command)
    _, err = command.communicate(timeout=30)

    assert command.returncode == 0
    assert report["pid"] == command.pid  # the command became the run (exec)
    assert "SOME_TOKEN" in err and "fresh process" in err
    assert "s3cr3t-value" not in err


def test_without_a_reachable_engine_the_command_runs_the_module_itself(tmp_path: Path) -> None:
    env = {**os.environ, SOCKET_ENV: f"packshot-test-none-{uuid.uuid4().hex}"}
    env["PYTHONPATH"] = str(ROOT)
    done = subprocess.run(
        [sys.executable, "-m", "deployments.engine_start", PROBE, "exit:4"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
    )

    assert done.returncode == 4
    assert json.loads(done.stdout.splitlines()[0])["argv"] == ["exit:4"]
    assert "not reachable" in done.stderr


def test_differing_ignores_only_prefects_per_run_variables() -> None:
    own = {"PATH": "/bin", "PREFECT_API_URL": "http://a", "KEEP": "1"}
    theirs = {
        "PATH": "/bin",
        "PREFECT_API_URL": "http://b",
        "PREFECT__FLOW_RUN_ID": "x",
        "NEW": "2",
    }

    assert differing(own, theirs) == ["KEEP", "NEW", "PREFECT_API_URL"]
    assert differing(own, {**own, "PREFECT__CONTROL_TOKEN": "t"}) == []


@pytest.mark.skipif(os.geteuid() != 0, reason="needs to connect as another user")
def test_a_process_of_another_user_is_refused(engine: Engine) -> None:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child asks as user nobody and reports through the pipe
        try:
            sys.stderr = os.fdopen(write, "w")
            os.setgid(65534)
            os.setuid(65534)
            found = _run_forked(engine.name, PROBE, [])
            sys.stderr.write(f"forked: {found}\n")
            sys.stderr.flush()
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        said = pipe.read()
    os.waitpid(pid, 0)

    assert "not this user's process" in said
    assert "forked: None" in said  # the command would start a fresh process of its own


def test_the_engine_will_not_start_after_an_import_started_a_thread(tmp_path: Path) -> None:
    started = subprocess.run(
        [*ENGINE, "--socket", f"t-{uuid.uuid4().hex}", *MODULE, *THREAD_ON_IMPORT],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert started.returncode == 1
    assert "started threads ['started-on-import']" in started.stderr


def test_a_malformed_request_is_dropped_and_the_engine_serves_the_next(
    engine: Engine, tmp_path: Path
) -> None:
    import socket

    from deployments.engine_start import socket_address

    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as stranger:
        stranger.connect(socket_address(engine.name))
        # Streams passed as the command passes them, then a request that names nothing.
        socket.send_fds(stranger, [b"\x00\x00\x00\x02"], [0, 1, 2])
        stranger.sendall(b"{}")
        try:
            answer = stranger.recv(100)
        except ConnectionResetError:  # closed with the rest unread
            answer = b""
        assert answer == b""  # no answer: closed

    command = engine.command(cwd=tmp_path)
    report = _report(command)
    command.communicate(timeout=30)

    assert report["ppid"] == engine.process.pid


def test_a_batch_run_starts_its_photos_with_nothing_left_to_import() -> None:
    """What the engine preloads covers what a batch run loads on its way to a photo's first
    step: Prefect serializing the batch's and each subflow's parameters (FastAPI's encoder,
    0.25 s in every forked run otherwise). In a fresh interpreter: this one has it all."""
    script = """
import importlib, json, sys, uuid
from deployments.warm_engine import FLOW_MODULES
for name in FLOW_MODULES:
    importlib.import_module(name)
before = set(sys.modules)
from flows.batch import CarriedJob, process_batch
from flows.process_image import process_image
job = CarriedJob(job_id=uuid.uuid4(), sku="SKU-1", theme="studio")
process_batch.serialize_parameters({"jobs": [job]})
process_image.serialize_parameters({"sku": job.sku, "theme": job.theme, "job_id": job.job_id})
print(json.dumps(sorted(set(sys.modules) - before)))
"""
    done = subprocess.run(
        [sys.executable, "-c", script],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1]) == []

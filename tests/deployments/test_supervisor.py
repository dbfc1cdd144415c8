"""The supervisor of `packshot up`: crashes are counted in a window, and never stop the others."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from core.priority import autogroup_nice, is_batch
from core.settings import Settings
from deployments.service import CrashWindow, Service
from deployments.stack import Stack


def test_restarts_are_limited_per_window_and_old_crashes_are_forgotten() -> None:
    window = CrashWindow(limit=3, window_s=600)
    for now in (0.0, 10.0, 20.0):
        assert window.next_start(now) == now
        window.restarted(now)
    assert window.next_start(30.0) == 600.0  # a fourth crash within 10 min waits
    assert window.next_start(700.0) == 700.0  # an hour of quiet later, it starts at once
    window.restarted(700.0)
    assert window.next_start(710.0) == 710.0


def _service(name: str, code: str, window: CrashWindow) -> Service:
    return Service(name, [sys.executable, "-c", code], crashes=window)


def test_a_worker_that_keeps_crashing_never_takes_the_webhook_down() -> None:
    stack = Stack(Settings().model_copy(update={"prefect_api_url": "http://127.0.0.1:9/api"}))
    worker = _service("worker", "raise SystemExit(3)", CrashWindow(limit=2, window_s=600))
    webhook = _service("webhook", "import time; time.sleep(120)", CrashWindow())
    stack.services = [worker, webhook]
    for service in stack.services:
        service.start(stack.env)
    assert webhook.process is not None
    first_webhook = webhook.process.pid
    supervisor = threading.Thread(target=stack.supervise, daemon=True)
    supervisor.start()
    try:
        deadline = time.monotonic() + 60
        while worker.restart_at is None or worker.restart_at <= time.monotonic():
            assert time.monotonic() < deadline, "the worker was never held back"
            time.sleep(0.2)
        # Two restarts, then the third crash waits for the window: the stack keeps running.
        assert worker.crashes.restarts == 2
        assert supervisor.is_alive()
        assert webhook.alive() and webhook.process.pid == first_webhook
    finally:
        stack.request_stop()
        supervisor.join(timeout=10)
        for service in stack.services:
            service.stop(timeout=5)
    assert not supervisor.is_alive()


def test_a_held_service_stays_down_until_released_then_starts_again() -> None:
    stack = Stack(Settings().model_copy(update={"prefect_api_url": "http://127.0.0.1:9/api"}))
    sleeper = _service("prefect", "import time; time.sleep(120)", CrashWindow())
    stack.services = [sleeper]
    sleeper.start(stack.env)
    supervisor = threading.Thread(target=stack.supervise, daemon=True)
    supervisor.start()
    try:
        with stack.held("prefect") as held:
            assert held is sleeper and not sleeper.alive()
            time.sleep(2.5)  # two supervisor rounds: it would have been revived by now
            assert not sleeper.alive()
        assert sleeper.alive()
        assert sleeper.crashes.restarts == 0  # a drill is not a crash
    finally:
        stack.request_stop()
        supervisor.join(timeout=10)
        sleeper.stop(timeout=5)


def test_an_autogroup_file_without_a_niceness_reads_as_none(tmp_path: Path) -> None:
    shown = {1: "", 2: "/autogroup-4711 nice 7\n", 3: "/autogroup-1 nice -3"}
    for pid, text in shown.items():
        (tmp_path / str(pid)).mkdir()
        (tmp_path / str(pid) / "autogroup").write_text(text)
    # Some sandboxed kernels show the file but leave it empty: no autogroup to match.
    assert [autogroup_nice(pid, tmp_path) for pid in (1, 2, 3, 4)] == [None, 7, -3, None]


def test_a_niced_service_and_the_processes_it_starts_yield_the_cpu() -> None:
    import os

    # A stand-in for a worker: it starts a child (a flow run) after a moment and waits.
    code = "import subprocess, sys, time; time.sleep(0.3); subprocess.run(['sleep', '30'])"
    service = Service("worker", [sys.executable, "-c", code], nice=7, batch=True)
    service.start(dict(os.environ))
    try:
        assert service.process is not None
        base = os.getpriority(os.PRIO_PROCESS, 0)
        assert os.getpriority(os.PRIO_PROCESS, service.process.pid) == min(base + 7, 19)
        deadline = time.monotonic() + 20
        children: list[int] = []
        while not children and time.monotonic() < deadline:
            pid = service.process.pid
            children = [
                int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
            ]
            time.sleep(0.05)
        assert children, "the stand-in never started its child"
        assert os.getpriority(os.PRIO_PROCESS, children[0]) == min(base + 7, 19)
        # Batch work: it never preempts the webhook when a delivery wakes it (Linux).
        if hasattr(os, "SCHED_BATCH"):
            assert is_batch(service.process.pid) and is_batch(children[0])
            assert not is_batch(os.getpid())
        # Under autogroups niceness only counts within a session: the service leads its own,
        # so its group gets the niceness too, or the webhook would gain nothing.
        if autogroup_nice(service.process.pid) is not None:
            assert autogroup_nice(service.process.pid) == min(base + 7, 19)
    finally:
        service.stop()


def test_a_flow_run_in_a_session_of_its_own_lowers_its_autogroup() -> None:
    """What a worker's flow-run process does when ``flows`` is imported (core.priority)."""
    import os

    if autogroup_nice(os.getpid()) is None:
        pytest.skip("this kernel has no autogroups: plain niceness already holds")
    code = (
        "import os, time; os.nice(6); os.environ['PREFECT__FLOW_RUN_ID'] = 'x'; import flows; "
        "print(open('/proc/self/autogroup').read(), flush=True)"
    )
    session_leader = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        start_new_session=True,
        cwd=Path(__file__).parents[2],
        check=True,
    )
    assert session_leader.stdout.strip().endswith("nice 6")
    # In someone else's session (a test, a shell) it leaves the shared group alone.
    shared = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=Path(__file__).parents[2],
        check=True,
    )
    assert shared.stdout.strip().endswith(f"nice {autogroup_nice(os.getpid())}")


def test_the_stack_starts_workers_niced_and_the_webhook_not() -> None:
    # Its own Prefect server, whatever PREFECT_API_URL the test session has.
    settings = Settings().model_copy(
        update={"prefect_api_url": None, "worker_nice": 12, "server_nice": 3}
    )
    stack = Stack(settings)
    nice = {service.name: service.nice for service in stack.services}
    assert nice["worker"] == 12 and nice["webhook"] == 0
    assert nice["worker-engine"] == 12  # its forked flow runs are the worker's
    assert nice["prefect"] == 3 and nice["dispatcher"] == 3
    # Only the pipeline is batch work; with no niceness it competes as an equal.
    batch = {service.name for service in stack.services if service.batch}
    assert batch == {"worker", "worker-engine"}
    equal = Stack(settings.model_copy(update={"worker_nice": 0}))
    assert not any(service.batch for service in equal.services)
    # The webhook process only answers: its background loops run in the dispatcher process.
    webhook = stack.service("webhook")
    assert webhook.env["PACKSHOT_DISPATCHER_ENABLED"] == "false"
    assert stack.service("dispatcher").argv[-1] == "dispatcher"


def test_stopping_ends_flow_runs_after_the_dispatcher_and_before_the_workers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No run is created while the stack cancels the running ones; workers stop after them."""
    stack = Stack(Settings().model_copy(update={"prefect_api_url": None}))
    order: list[str] = []
    for service in stack.services:
        monkeypatch.setattr(service, "stop", lambda name=service.name: order.append(name))
    monkeypatch.setattr(stack, "_end_flow_runs", lambda: order.append("end flow runs"))
    monkeypatch.setattr(stack, "_sweep", lambda: None)
    stack.stop()
    ends = order.index("end flow runs")
    assert {"dispatcher", "webhook", "dashboard"} <= set(order[:ends])
    assert order[ends + 1 :] == ["worker", "worker-engine", "prefect"]

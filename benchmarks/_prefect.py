"""Benchmark helper: a real local Prefect server (not the test harness) on a free port."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.helpers.ports import free_port  # the importing benchmark put the repo root on sys.path


@contextmanager
def prefect_server() -> Iterator[str]:
    """Start ``prefect server start`` with its own home; yields the API URL; stops it after."""
    if os.environ.get("PREFECT_API_URL"):
        yield os.environ["PREFECT_API_URL"]
        return
    port = free_port()
    home = tempfile.mkdtemp(prefix="bench-prefect-")
    env = {
        **os.environ,
        "PREFECT_HOME": home,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_UI_ENABLED": "false",
    }
    prefect = str(Path(sys.executable).with_name("prefect"))
    proc = subprocess.Popen(
        [prefect, "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/api"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        else:
            raise RuntimeError("Prefect server did not start")
        os.environ["PREFECT_API_URL"] = url
        yield url
    finally:
        from prefect.events.worker import EventsWorker
        from prefect.logging.handlers import APILogWorker

        APILogWorker.drain_all(timeout=10)  # send what is queued before the server goes
        EventsWorker.drain_all(timeout=10)
        os.environ.pop("PREFECT_API_URL", None)
        proc.terminate()
        proc.wait(timeout=30)


def state_times(api: str, auth: str | None, flow_run_id: str) -> dict[str, float]:
    """When the flow run was created and first entered each state type (epoch seconds)."""
    from prefect import get_client

    from deployments.prefect_env import prefect_api

    with prefect_api(api, auth), get_client(sync_client=True) as client:
        run = client.read_flow_run(flow_run_id)
        states = client.read_flow_run_states(flow_run_id)
    times = {"created": run.created.timestamp()}  # type: ignore[union-attr]
    for state in states:
        times.setdefault(state.type.value, state.timestamp.timestamp())
    return times

"""Deployments on the session's Prefect test server, and running their flow runs as a worker does.

No worker or work pool is involved: a deployment's runs stay Scheduled until the test executes
them with ``run_flow`` (what ``prefect flow-run execute`` does inside a worker's flow-run process).
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["StandInWorker", "deploy", "stand_in_worker"]


def deploy(name: str, entrypoint: str) -> uuid.UUID:
    """Create (or update) deployment ``flow/deployment`` ``name`` for ``entrypoint``."""
    from prefect import get_client

    async def create() -> uuid.UUID:
        flow_name, deployment = name.split("/")
        async with get_client() as client:
            flow_id = await client.create_flow_from_name(flow_name)
            return await client.create_deployment(
                flow_id=flow_id, name=deployment, entrypoint=entrypoint
            )

    return asyncio.run(create())


def _scheduled_runs(deployment_id: uuid.UUID) -> list[Any]:
    from prefect import get_client
    from prefect.client.schemas.filters import (
        DeploymentFilter,
        DeploymentFilterId,
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType

    scheduled = FlowRunFilter(
        state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.SCHEDULED]))
    )
    with get_client(sync_client=True) as client:
        return client.read_flow_runs(
            flow_run_filter=scheduled,
            deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id])),
        )


class StandInWorker:
    """Executes every Scheduled run of one deployment, each on its own thread, as it appears."""

    def __init__(self, deployment_id: uuid.UUID, flow: Any) -> None:
        self.deployment_id = deployment_id
        self.flow = flow
        self.results: dict[uuid.UUID, Any] = {}  # run id → what the flow returned (or raised)
        self._threads: dict[uuid.UUID, threading.Thread] = {}
        self._stop = threading.Event()

    def _execute(self, run: Any) -> None:
        from prefect.flow_engine import run_flow

        try:
            self.results[run.id] = run_flow(self.flow, flow_run=run, parameters=run.parameters)
        except Exception as exc:  # noqa: BLE001  (kept for the test to assert on)
            self.results[run.id] = exc

    def poll(self) -> None:
        """Pick up new Scheduled runs until stopped."""
        while not self._stop.is_set():
            for run in _scheduled_runs(self.deployment_id):
                running = self._threads.get(run.id)
                # A run comes back Scheduled when it is resumed after a suspension.
                if running is None or not running.is_alive():
                    thread = threading.Thread(target=self._execute, args=(run,), daemon=True)
                    self._threads[run.id] = thread
                    thread.start()
            self._stop.wait(0.3)

    def wait(self, run_id: uuid.UUID, timeout: float) -> Any:
        """What run ``run_id`` returned, once it has run to the end."""
        deadline = time.monotonic() + timeout
        while run_id not in self._threads and time.monotonic() < deadline:
            time.sleep(0.1)
        self._threads[run_id].join(max(0.0, deadline - time.monotonic()))
        assert run_id in self.results, f"run {run_id} still running after {timeout:.0f} s"
        return self.results[run_id]

    @property
    def executed(self) -> list[uuid.UUID]:
        return list(self._threads)


@contextmanager
def stand_in_worker(deployment_id: uuid.UUID, flow: Any) -> Iterator[StandInWorker]:
    """A stand-in worker for the block: every run of the deployment is executed in-process."""
    worker = StandInWorker(deployment_id, flow)
    poller = threading.Thread(target=worker.poll, name="stand-in-worker", daemon=True)
    poller.start()
    try:
        yield worker
    finally:
        worker._stop.set()
        poller.join(timeout=10)

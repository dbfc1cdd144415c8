"""The recovery loop: jobs whose flow run crashed go back to the outbox, or fail with a reason.

A worker's machine can die mid-flow; Prefect's zombie automation (created by bring-up) then
marks the run Crashed once its heartbeats stop. Nothing else would ever finish the job, so this
loop, beside the dispatcher in the webhook process, reads the state of every in-flight job's
run from Prefect (one API call per 200 jobs) and:

- Crashed: queues the job again (up to ``PACKSHOT_CRASH_RERUNS`` times, each with its own
  idempotency key); the dispatcher creates the new run, which skips every stored step. After
  that the job is FAILED with the crash as its reason.
- Failed or Cancelled while the job row still says otherwise (the run died before it could
  write it, or never started the job): the job is FAILED with the run's message.

A photo of a batch (``flows/batch.py``) records its own subflow run on the job. If the batch's
process dies, Prefect marks the batch run Crashed but leaves the open subflow as it was; such a
subflow is judged by the state of the batch run that carries it, and marked Crashed once acted on.

Every change is made under a row lock and only if the job still waits on that run, so several
webhook replicas may run this loop at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlmodel import Session

from core import crashes
from core.db import get_engine
from core.settings import Settings
from core.urls import redact_urls
from webhook.db import DbRunner
from webhook.dispatcher import prefect_auth_string
from webhook.logs import get_logger

if TYPE_CHECKING:
    from prefect.client.orchestration import PrefectClient
    from prefect.client.schemas.objects import FlowRun

__all__ = ["Recovery", "RecoveryRound", "run_recovery"]

log = get_logger("packshot.webhook.recovery")
_PAGE = 200


@dataclass
class RecoveryRound:
    """What one round did (job ids)."""

    requeued: list[uuid.UUID] = field(default_factory=list)
    failed: list[uuid.UUID] = field(default_factory=list)


@dataclass(frozen=True)
class _InFlight:
    job_id: uuid.UUID
    flow_run_id: str
    recoveries: int


def _in_flight(url: str) -> list[_InFlight]:
    with Session(get_engine(url)) as session:
        return [
            _InFlight(job.id, job.flow_run_id or "", job.recoveries)
            for job in crashes.in_flight(session)
        ]


def _apply(url: str, job: _InFlight, run: FlowRun, reruns: int) -> str | None:
    """Requeue or fail ``job`` for its ended ``run``; what was done, or None."""
    state = run.state
    if state is None:
        return None
    message = redact_urls(state.message or state.name or state.type.value)[:1000]
    with Session(get_engine(url)) as session:
        if state.is_crashed() and job.recoveries < reruns:
            done = crashes.requeue_crashed(
                session,
                job_id=job.job_id,
                flow_run_id=job.flow_run_id,
                reason=f"flow run {run.name} crashed: {message}",
            )
            action = "requeued"
        else:
            if state.is_crashed():
                error_type, text = "Crashed", f"flow run crashed {job.recoveries + 1} times"
            else:
                error_type, text = f"FlowRun{state.type.value.title()}", "flow run ended"
            done = crashes.fail_crashed(
                session,
                job_id=job.job_id,
                flow_run_id=job.flow_run_id,
                error_type=error_type,
                message=f"{text} ({run.name}): {message}",
            )
            action = "failed"
        session.commit()
    return action if done else None


def _ended(run: FlowRun) -> bool:
    return run.state is not None and run.state.is_final()


def _ended_badly(run: FlowRun) -> bool:
    state = run.state
    return state is not None and (state.is_crashed() or state.is_failed() or state.is_cancelled())


class Recovery:
    """Finds in-flight jobs whose run ended badly; ``run`` loops, ``run_once`` is one round."""

    def __init__(self, settings: Settings, *, db: DbRunner, client: PrefectClient) -> None:
        self.settings = settings
        self._db = db
        self._client = client

    async def _runs(self, ids: list[str]) -> dict[str, FlowRun]:
        from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

        found: dict[str, FlowRun] = {}
        for start in range(0, len(ids), _PAGE):  # the API answers at most 200 runs a call
            chunk = [uuid.UUID(i) for i in ids[start : start + _PAGE]]
            page = await self._client.read_flow_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=chunk)), limit=len(chunk)
            )
            found.update({str(run.id): run for run in page})
        return found

    async def _carriers(self, runs: dict[str, FlowRun]) -> dict[str, FlowRun]:
        """Subflow run id → the run carrying it, for the subflows that have not ended."""
        from prefect.client.schemas.filters import TaskRunFilter, TaskRunFilterId

        parents = {
            run_id: run.parent_task_run_id
            for run_id, run in runs.items()
            if run.parent_task_run_id is not None and not _ended(run)
        }
        if not parents:
            return {}
        wanted = list(set(parents.values()))
        task_runs = await self._client.read_task_runs(
            task_run_filter=TaskRunFilter(id=TaskRunFilterId(any_=wanted)), limit=len(wanted)
        )
        flow_of = {task_run.id: str(task_run.flow_run_id) for task_run in task_runs}
        carriers = await self._runs(sorted(set(flow_of.values())))
        return {
            run_id: carriers[flow_of[parent]]
            for run_id, parent in parents.items()
            if flow_of.get(parent) in carriers
        }

    async def run_once(self) -> RecoveryRound:
        """One round: read the runs of in-flight jobs, act on those that ended badly."""
        result = RecoveryRound()
        jobs = await self._db.run(_in_flight, self._db.url)
        if not jobs:
            return result
        runs = await self._runs([job.flow_run_id for job in jobs])
        carriers = await self._carriers(runs)
        for job in jobs:
            run = runs.get(job.flow_run_id)
            if run is None or run.state is None:
                continue
            run = carriers.get(job.flow_run_id, run)
            if run.state is None or not _ended_badly(run):
                continue
            action = await self._db.run(_apply, self._db.url, job, run, self.settings.crash_reruns)
            if action is not None:
                getattr(result, action).append(job.job_id)
                log.warning(
                    f"recovery.{action}",
                    job_id=str(job.job_id),
                    flow_run_id=job.flow_run_id,
                    state=run.state.type.value,
                    recoveries=job.recoveries,
                )
                if job.flow_run_id in carriers:
                    await self._end_orphan(job.flow_run_id, run)
        return result

    async def _end_orphan(self, subflow_id: str, carrier: FlowRun) -> None:
        """Show the photo's subflow as ended too: its process died with the batch run."""
        from prefect.states import Crashed

        message = f"its batch run {carrier.name} ended {carrier.state.type.value}"  # type: ignore[union-attr]
        await self._client.set_flow_run_state(
            uuid.UUID(subflow_id), Crashed(message=message), force=True
        )

    async def run(self, stop: asyncio.Event, on_requeue: Callable[[], None] | None = None) -> None:
        """Round after round until ``stop``; Prefect or database trouble waits for the next.

        ``on_requeue`` is called when jobs went back to the outbox (wakes the dispatcher).
        """
        interval = self.settings.recover_interval_s
        while not stop.is_set():
            try:
                result = await self.run_once()
                if result.requeued and on_requeue is not None:
                    on_requeue()
            except Exception as exc:  # noqa: BLE001  (never die: the next round tries again)
                log.warning("recovery.error", error=redact_urls(f"{type(exc).__name__}: {exc}"))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=interval)


async def run_recovery(
    settings: Settings,
    stop: asyncio.Event,
    *,
    db: DbRunner,
    api_url: str,
    on_requeue: Callable[[], None] | None = None,
) -> None:
    """The recovery loop with its own Prefect client, until ``stop``."""
    from prefect.client.orchestration import PrefectClient

    async with PrefectClient(api_url, auth_string=prefect_auth_string(settings)) as client:
        await Recovery(settings, db=db, client=client).run(stop, on_requeue)

"""Deployment names, and the single function that starts a ``process-image`` deployment run.

Used by the webhook's dispatcher, the dashboard's re-run button and the CLI, which all may import
this module; of this repository it imports only the tables' column bases (``core.tables``), and
Prefect only when a run is started, so importing it stays cheap (no tasks, imaging, numpy or
model runtime). Idempotency keys are permanent in Prefect: the first run of a job uses the job
id, so a repeated dispatch can never start a second run; a deliberate re-run uses a key derived
from the job's current state, so a double click starts one run, and a later re-run (after that
one finished) starts another. A job queued again after its run crashed gets one new key per
recovery, and a FAILED job delivered again one new key per delivery.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING

from core.tables import JobBase, RowModel

if TYPE_CHECKING:
    from prefect.client.orchestration import PrefectClient

__all__ = [
    "BACKFILL_DEPLOYMENT",
    "PROCESS_BATCH_DEPLOYMENT",
    "PROCESS_IMAGE_DEPLOYMENT",
    "JobRef",
    "after_decision",
    "batch_key",
    "dispatch_key",
    "rerun_key",
    "suspended_run",
    "trigger_batch",
    "trigger_job",
    "trigger_job_sync",
]

# Must match prefect.yaml: "<flow name>/<deployment name>".
PROCESS_IMAGE_DEPLOYMENT = "process-image/default"
BACKFILL_DEPLOYMENT = "backfill/default"
PROCESS_BATCH_DEPLOYMENT = "process-batch/default"


class JobRef(RowModel, JobBase):
    """What a deployment run needs to know about a job: a snapshot of its row.

    ``JobRef.model_validate(job)`` takes it from a ``Job`` row or any model of one.
    """

    def parameters(self, *, force: bool = False, segmenter: str | None = None) -> dict[str, object]:
        """The flow parameters: the job by id, and its SKU and theme for the run's name.

        Never the source URL: flow-run parameters are readable by anyone who may read runs in
        the Prefect API, and a URL may carry credentials. The flow reads it from the job table.
        """
        params: dict[str, object] = {"sku": self.sku, "theme": self.theme, "job_id": str(self.id)}
        if force:
            params["force"] = True
        if segmenter:
            params["segmenter"] = segmenter
        return params


def dispatch_key(job: JobRef) -> str:
    """Idempotency key of the webhook's run of ``job``: the job id, then one per attempt.

    A delivery of a FAILED job starts attempt ``redeliveries``; within an attempt each crash
    recovery gets its own key. A repeated dispatch of the same attempt reuses the key, so it
    never starts a second run.

    >>> job = uuid.UUID(int=1)
    >>> dispatch_key(JobRef(job, "S", "a" * 64, "default", "https://x/a.jpg", redeliveries=2))
    '00000000-0000-0000-0000-000000000001:redeliver:2'
    """
    key = str(job.id) if job.redeliveries == 0 else f"{job.id}:redeliver:{job.redeliveries}"
    return key if job.recoveries == 0 else f"{key}:recover:{job.recoveries}"


def rerun_key(job: JobRef) -> str:
    """Idempotency key of a deliberate re-run of ``job`` in its current state."""
    stamp = int(job.finished_at.timestamp()) if job.finished_at else 0
    return f"{job.id}:rerun:{stamp}"


async def trigger_job(
    job: JobRef,
    *,
    client: PrefectClient | None = None,
    rerun: bool = False,
    force: bool = False,
    segmenter: str | None = None,
    deployment: str = PROCESS_IMAGE_DEPLOYMENT,
) -> str:
    """Create the flow run for ``job`` and return its id; never waits for the run itself.

    ``segmenter`` asks this run to cut out with one remover (``freepik``) instead of the
    configured chain; such a re-run has its own idempotency key.
    """
    from prefect.deployments import arun_deployment

    key = rerun_key(job) if rerun else dispatch_key(job)
    run = await arun_deployment(
        deployment,
        client=client,
        parameters=job.parameters(force=force, segmenter=segmenter),
        idempotency_key=f"{key}:{segmenter}" if segmenter else key,
        timeout=0,
        as_subflow=False,
        tags=["packshot", f"sku:{job.sku}", f"theme:{job.theme}"],
    )
    return str(run.id)


def batch_key(jobs: Sequence[JobRef]) -> str:
    """Idempotency key of a run carrying ``jobs``: the dispatch key of the oldest one.

    A dispatcher that created the run but crashed before recording it claims the same oldest
    job first next time, and Prefect hands back the run it already has.
    """
    return f"batch:{dispatch_key(jobs[0])}"


async def trigger_batch(
    jobs: Sequence[JobRef],
    *,
    client: PrefectClient | None = None,
    deployment: str = PROCESS_BATCH_DEPLOYMENT,
) -> tuple[str, list[uuid.UUID]]:
    """Create one flow run that processes ``jobs`` one after the other, each as its own subflow.

    Returns the run's id and the ids of the jobs it carries, read from the run itself: a run
    found by its idempotency key carries the jobs it was created with, which may differ from
    ``jobs``; only those may be recorded as dispatched.
    """
    from prefect.deployments import arun_deployment

    run = await arun_deployment(
        deployment,
        client=client,
        parameters={"jobs": [job.parameters() for job in jobs]},
        idempotency_key=batch_key(jobs),
        timeout=0,
        as_subflow=False,
        tags=["packshot", "batch"],
    )
    carried = [uuid.UUID(str(item["job_id"])) for item in run.parameters.get("jobs", [])]
    return str(run.id), carried


def trigger_job_sync(
    job: JobRef, *, rerun: bool = False, force: bool = False, segmenter: str | None = None
) -> str:
    """``trigger_job`` for synchronous callers (the dashboard, the CLI)."""
    import asyncio

    return asyncio.run(trigger_job(job, rerun=rerun, force=force, segmenter=segmenter))


def after_decision(job: JobRef) -> str | None:
    """Act on a person's decision on the held ``job`` (already recorded on its row).

    Approved: the run suspended for review (under a worker) is resumed with the decision, or,
    when none waits, a run is started; either walks the stored steps and publishes. Returns its
    flow run id. Rejected: a run still suspended for review is cancelled; returns None.
    """
    waiting = suspended_run(job)
    if job.review_decision == "approved":
        if waiting is None:
            return trigger_job_sync(job, rerun=True)
        answer = {"decision": "approve", "by": job.review_by or "", "reason": ""}
        _settle(waiting, run_input=answer)
        return str(waiting)
    if waiting is not None:
        _settle(waiting, cancel=f"rejected by {job.review_by}: {job.review_reason}"[:500])
    return None


def suspended_run(job: JobRef) -> uuid.UUID | None:
    """The job's flow run when it is suspended waiting for review; None otherwise."""
    from prefect import get_client
    from prefect.exceptions import ObjectNotFound

    if not job.flow_run_id:
        return None
    with get_client(sync_client=True) as client:
        try:
            run = client.read_flow_run(uuid.UUID(job.flow_run_id))
        except (ObjectNotFound, ValueError):  # a run this server does not know: none waits
            return None
    return run.id if run.state is not None and run.state.is_paused() else None


def _settle(
    run_id: uuid.UUID, *, run_input: dict[str, str] | None = None, cancel: str | None = None
) -> None:
    """Resume the suspended run with ``run_input``, or cancel it with the message ``cancel``."""
    from prefect import get_client
    from prefect.states import Cancelled

    with get_client(sync_client=True) as client:
        if cancel is not None:
            client.set_flow_run_state(run_id, Cancelled(message=cancel), force=True)
        else:
            client.resume_flow_run(run_id, run_input=run_input)

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

from typing import TYPE_CHECKING

from core.tables import JobBase, RowModel

if TYPE_CHECKING:
    from prefect.client.orchestration import PrefectClient

__all__ = [
    "BACKFILL_DEPLOYMENT",
    "PROCESS_IMAGE_DEPLOYMENT",
    "JobRef",
    "continue_approved",
    "dispatch_key",
    "rerun_key",
    "trigger_job",
    "trigger_job_sync",
]

# Must match prefect.yaml: "<flow name>/<deployment name>".
PROCESS_IMAGE_DEPLOYMENT = "process-image/default"
BACKFILL_DEPLOYMENT = "backfill/default"


class JobRef(RowModel, JobBase):
    """What a deployment run needs to know about a job: a snapshot of its row.

    ``JobRef.model_validate(job)`` takes it from a ``Job`` row or any model of one.
    """

    def parameters(self, *, force: bool = False) -> dict[str, object]:
        """The flow parameters: the job by id, and its SKU and theme for the run's name.

        Never the source URL: flow-run parameters are readable by anyone who may read runs in
        the Prefect API, and a URL may carry credentials. The flow reads it from the job table.
        """
        params: dict[str, object] = {"sku": self.sku, "theme": self.theme, "job_id": str(self.id)}
        if force:
            params["force"] = True
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
    deployment: str = PROCESS_IMAGE_DEPLOYMENT,
) -> str:
    """Create the flow run for ``job`` and return its id; never waits for the run itself."""
    from prefect.deployments import arun_deployment

    run = await arun_deployment(
        deployment,
        client=client,
        parameters=job.parameters(force=force),
        idempotency_key=rerun_key(job) if rerun else dispatch_key(job),
        timeout=0,
        as_subflow=False,
        tags=["packshot", f"sku:{job.sku}", f"theme:{job.theme}"],
    )
    return str(run.id)


def trigger_job_sync(job: JobRef, *, rerun: bool = False, force: bool = False) -> str:
    """``trigger_job`` for synchronous callers (the dashboard, the CLI)."""
    import asyncio

    return asyncio.run(trigger_job(job, rerun=rerun, force=force))


def continue_approved(job: JobRef) -> str:
    """Start the run that publishes ``job`` after a person approved it; returns its flow run id.

    The decision is already on the job row (``core.review.decide``); the run skips every step
    whose outputs are stored, sees the approval and publishes. A job approved twice quickly
    starts one run: the idempotency key comes from the job's state.
    """
    return trigger_job_sync(job, rerun=True)

"""Several waiting photos in one flow run, each still its own ``process-image`` subflow run.

Under a worker every flow run starts a fresh Python process (about 4–5 s of CPU here, more
than one photo's steps). When the webhook's dispatcher finds several jobs waiting (a burst), it
gives a batch of them to one run of this flow, which pays that start once and runs each job's
``process_image`` as a subflow, one after the other: each photo keeps its own run in the Prefect
UI, with its name, state, task retries and artifact, and its job row. A photo that fails fails
its own subflow only; the next photo still runs, and the batch run completes with the counts.

A photo held for review in a batch is not suspended (Prefect suspends whole runs, not subflows):
its job waits in ``NEEDS_REVIEW`` and a decision starts its own run, as for ``packshot process``.

    prefect deployment run 'process-batch/default' \\
        --params '{"jobs": [{"job_id": "…", "sku": "A1", "theme": "default"}]}'
"""

from __future__ import annotations

import uuid
from collections import Counter

from prefect import flow, get_run_logger
from prefect.runtime import flow_run
from pydantic import BaseModel

from flows.heartbeats import without_heartbeats
from flows.process_image import process_image

__all__ = ["CarriedJob", "process_batch"]


class CarriedJob(BaseModel):
    """One job of a batch: the same parameters a single ``process-image`` run gets."""

    job_id: uuid.UUID
    sku: str
    theme: str = "default"


def _run_name() -> str:
    jobs = flow_run.get_parameters().get("jobs") or []
    return f"batch-of-{len(jobs)}"


@flow(name="process-batch", flow_run_name=_run_name, validate_parameters=True)
def process_batch(jobs: list[CarriedJob]) -> dict[str, int]:
    """Process ``jobs`` in this run, each as a ``process-image`` subflow; returns the counts.

    Args:
        jobs: the jobs to process, by id (the webhook's dispatcher fills this in).
    """
    outcomes: Counter[str] = Counter()
    # The batch run's heartbeats speak for its photos: a dead machine crashes the batch run,
    # and recovery judges each photo by it.
    with without_heartbeats():
        for job in jobs:
            state = process_image(
                sku=job.sku, theme=job.theme, job_id=job.job_id, return_state=True
            )
            outcomes[state.type.value.lower()] += 1
            if not state.is_completed():
                logger = get_run_logger()
                logger.warning("photo %s (job %s): %s", job.sku, job.job_id, state.message)
    return {"photos": len(jobs), **outcomes}

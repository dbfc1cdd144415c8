"""Stopping the flow runs of a stack: cancelled through Prefect, their processes ended in time.

A worker starts each flow run as a process in its own process group, so stopping the worker
does not stop its runs: they would go on (downloading, calling paid APIs) after `packshot up`
has exited, and the recovery loop of the next start could run the same job beside them. So,
before the workers stop:

1. every flow-run process of this stack is found (``deployments.proctree``) and its run is set
   to Cancelling through the Prefect API; the worker that runs it sees that and ends it as
   Prefect does (cancellation hooks, SIGTERM, then the run is Cancelled);
2. a process still running after the grace period is killed;
3. a run Prefect does not show as finished by then is set to Cancelled.
"""

from __future__ import annotations

import logging
import uuid

import httpx

from deployments import proctree
from deployments.health import answers_ok
from deployments.prefect_env import health_url, prefect_api

__all__ = ["STOP_MESSAGE", "end_flow_runs"]

log = logging.getLogger("packshot.stack")
STOP_MESSAGE = "cancelled: packshot up was stopped while this run was in progress"


def end_flow_runs(instance: str, api_url: str, auth: str | None, grace_s: float) -> list[str]:
    """Cancel the running flow runs of stack ``instance`` and end their processes.

    Args:
        instance: the stack's marker value (``proctree.MARKER``).
        api_url: the Prefect API holding the runs.
        auth: its credentials (``user:password``), if it requires them.
        grace_s: how long the runs get to end once cancelled, before their processes are killed.

    Returns:
        The ids of the flow runs that were running.
    """
    processes = [p for p in proctree.marked(instance) if p.flow_run_id]
    runs = sorted({p.flow_run_id for p in processes if p.flow_run_id})
    if not runs:
        return []
    log.info("cancelling %d running flow run(s): %s", len(runs), ", ".join(runs))
    reachable = answers_ok(health_url(api_url), timeout=2)
    if reachable:
        _propose(api_url, auth, runs, final=False)
    left = proctree.wait_gone(processes, grace_s if reachable else 0)
    if left:
        log.warning(
            "%d flow-run process(es) still running after %.0f s: killed", len(left), grace_s
        )
        proctree.kill(left)
        proctree.wait_gone(left, 5)
    if reachable:
        _propose(api_url, auth, runs, final=True)
    return runs


def _propose(api_url: str, auth: str | None, runs: list[str], *, final: bool) -> None:
    """Set each unfinished run to Cancelling, or (``final``) to Cancelled."""
    from prefect import get_client
    from prefect.client.schemas.objects import State
    from prefect.exceptions import ObjectNotFound
    from prefect.states import Cancelled, Cancelling

    try:
        with prefect_api(api_url, auth), get_client(sync_client=True) as client:
            for run_id in runs:
                try:
                    state = client.read_flow_run(uuid.UUID(run_id)).state
                except ObjectNotFound:
                    continue
                if state is None or state.is_final() or (state.is_cancelling() and not final):
                    continue
                # Cancelled is forced: the worker may be gone, and the process is.
                new: State[None] = (
                    Cancelled(message=STOP_MESSAGE) if final else Cancelling(message=STOP_MESSAGE)
                )
                client.set_flow_run_state(run_id, new, force=final)
    except httpx.HTTPError as exc:
        log.warning("could not cancel the flow runs through Prefect: %s", type(exc).__name__)

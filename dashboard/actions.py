"""What the job and review pages start: the flow run in the Prefect UI, re-runs, publishing.

Re-running goes through ``flows.trigger.trigger_job_sync``, the function the webhook's
dispatcher uses, so the dashboard starts runs exactly as a webhook delivery would.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import quote

import httpx

from core.settings import Settings
from core.urls import redact_url
from dashboard.models import JobDetail
from flows.trigger import JobRef, after_decision, trigger_job_sync

__all__ = [
    "RerunResult",
    "flow_run_url",
    "prefect_problem",
    "prefect_ui_base",
    "publish_approved",
    "rerun_job",
]

_log = logging.getLogger("packshot.dashboard")
_CLOUD_API = re.compile(r"^https://api\.prefect\.cloud/api/accounts/([^/]+)/workspaces/([^/]+)/?$")
_ANY_ADDRESS = {"", "0.0.0.0", "::", "[::]"}
PROBE_TIMEOUT_S = 2.0


def prefect_ui_base(settings: Settings, browser_host: str | None = None) -> str:
    """Where the Prefect UI is, as a browser should open it.

    ``PREFECT_API_URL`` wins (its ``/api`` suffix dropped; Prefect Cloud's workspace URL mapped
    to the app's); otherwise the embedded server on ``PACKSHOT_BIND:PACKSHOT_PREFECT_PORT``, with
    a wildcard bind address replaced by the host the browser used to reach the dashboard.

    Example:
        >>> from core.settings import Settings
        >>> prefect_ui_base(Settings(prefect_api_url="http://10.0.0.5:4200/api"))
        'http://10.0.0.5:4200'
    """
    api = (settings.prefect_api_url or "").strip()
    cloud = _CLOUD_API.match(api)
    if cloud:
        return f"https://app.prefect.cloud/account/{cloud[1]}/workspace/{cloud[2]}"
    if api:
        return re.sub(r"/api/?$", "", api.rstrip("/"))
    host = settings.bind if settings.bind not in _ANY_ADDRESS else (browser_host or "127.0.0.1")
    return f"http://{host}:{settings.prefect_port}"


def flow_run_url(settings: Settings, flow_run_id: str, browser_host: str | None = None) -> str:
    """The flow run's page in the Prefect UI (the id percent-encoded: it is one path segment)."""
    return f"{prefect_ui_base(settings, browser_host)}/runs/flow-run/{quote(flow_run_id, safe='')}"


@dataclass(frozen=True)
class RerunResult:
    """The outcome of a re-run request: the flow run id, or why there is none."""

    flow_run_id: str | None = None
    error: str | None = None


def _probe(api_url: str) -> str | None:
    """Why the Prefect API cannot be reached, or None; any HTTP answer counts as reachable.

    Prefect's client retries a refused connection for about ten seconds; a quick probe turns
    "Prefect is down" into an answer the user gets at once.
    """
    try:
        httpx.get(f"{api_url.rstrip('/')}/health", timeout=PROBE_TIMEOUT_S)
    except httpx.TransportError as exc:
        return f"Prefect API unreachable at {redact_url(api_url)}: {exc or type(exc).__name__}"
    return None


def rerun_job(
    detail: JobDetail, settings: Settings, *, force: bool = False, segmenter: str | None = None
) -> RerunResult:
    """Trigger ``process-image/default`` again for the job; never raises for Prefect trouble.

    Idempotent: the idempotency key derives from the job's last finish time, so a double click
    (or two people clicking) yields one flow run, and a later re-run of the finished job another.

    Args:
        detail: the job as the page shows it.
        settings: where Prefect is (``PREFECT_API_URL``).
        force: redo steps whose outputs are already stored.
        segmenter: cut out with this remover (``freepik``) instead of the configured chain.
    """
    problem = prefect_problem(settings)
    if problem:
        return RerunResult(error=problem)
    ref = JobRef.model_validate(detail.job)
    return _start(ref, lambda: trigger_job_sync(ref, rerun=True, force=force, segmenter=segmenter))


def publish_approved(job: JobRef, settings: Settings) -> RerunResult:
    """Start the run that publishes an approved ``job`` (``flows.trigger.after_decision``: the
    run suspended for review is resumed, or a new one started).

    Never raises for Prefect trouble; callers check ``prefect_problem`` before recording the
    decision, so a Prefect that is down leaves the job waiting rather than approved and stuck.
    """
    problem = prefect_problem(settings)
    if problem:
        return RerunResult(error=problem)
    return _start(job, lambda: after_decision(job) or "")


def prefect_problem(settings: Settings) -> str | None:
    """Why no run can be started from here now (no Prefect API, or it does not answer), or None."""
    api_url = settings.prefect_api_url
    if not api_url:
        return (
            "PREFECT_API_URL is not set, so there is no Prefect server to send the run to. "
            "Start the stack with `packshot up` (or set PREFECT_API_URL) and try again."
        )
    return _probe(api_url)


def end_rejected(job: JobRef, settings: Settings) -> None:
    """Cancel the run still suspended for the rejected ``job`` (best effort: the decision stands
    either way, and the run can be cancelled in the Prefect UI)."""
    if prefect_problem(settings):
        return
    from prefect.exceptions import PrefectException

    try:
        after_decision(job)
    except (httpx.HTTPError, PrefectException):
        _log.warning("cancelling the waiting run of rejected job %s failed", job.id, exc_info=True)


def _start(job: JobRef, trigger: Callable[[], str]) -> RerunResult:
    from prefect.exceptions import PrefectException

    try:
        return RerunResult(flow_run_id=trigger())
    except (httpx.HTTPError, PrefectException) as exc:
        _log.warning("starting a run of job %s failed", job.id, exc_info=True)
        return RerunResult(error=f"Prefect refused the run: {type(exc).__name__}: {exc}")

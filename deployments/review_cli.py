"""``packshot review``: the queue of jobs a quality verdict held, and the decisions on them.

A decision is recorded on the job (who, when, why) under a row lock, so it works the same for a
job held by ``packshot process`` and one held under a worker. An approved job is then published
by a run of its flow: on the workers when a Prefect server with the deployment is up (the same
run the dashboard starts), otherwise in this process.
"""

from __future__ import annotations

import getpass
import json
import uuid
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from core import review
from core.db import session_scope, upgrade_schema
from core.errors import ConfigurationError
from core.schemas import JobView
from core.settings import Settings, get_settings
from core.tables import Job

__all__ = ["review_app"]

review_app = typer.Typer(
    no_args_is_help=True, help="The review queue: jobs a quality verdict held before publishing."
)
out = Console(highlight=False)
err = Console(stderr=True, highlight=False)

_Jobs = Annotated[list[str], typer.Argument(help="Job ids (as `review list` shows them).")]
_By = Annotated[str | None, typer.Option("--by", help="Who decides; your login name if unset.")]


@review_app.command("list")
def list_held(
    as_json: Annotated[bool, typer.Option("--json", help="One JSON array.")] = False,
) -> None:
    """Jobs waiting for a decision, oldest first, with the checks they failed."""
    settings = get_settings()
    upgrade_schema(settings.database_url)
    with session_scope(settings.database_url) as session:
        held = [(JobView.model_validate(job), job.finished_at) for job in review.held_jobs(session)]
    views, held_at = [v for v, _ in held], {v.job_id: at for v, at in held}
    if as_json:
        out.print_json(json.dumps([_document(v, held_at[v.job_id]) for v in views]))
        return
    if not views:
        out.print("no job is waiting for review")
        return
    table = Table("job", "sku", "theme", "held since", "score", "failed checks")
    for view in views:
        failed = view.quality.failed() if view.quality else []
        since = held_at[view.job_id]
        table.add_row(
            str(view.job_id),
            escape(view.sku),
            escape(view.theme),
            since.strftime("%Y-%m-%d %H:%M") if since else "",
            f"{view.quality.score:.2f}" if view.quality else "",
            escape("; ".join(c.detail for c in failed) or "(held by PACKSHOT_REVIEW=always)"),
        )
    out.print(table)


@review_app.command()
def approve(jobs: _Jobs, by: _By = None) -> None:
    """Approve held jobs: each is published by a run of its flow."""
    settings = get_settings()
    failed = False
    for text in jobs:
        job = _decide(settings, text, "approve", by, None)
        if job is None:
            failed = True
            continue
        out.print(f"{job.id} approved; {escape(_publish(settings, job))}", soft_wrap=True)
    raise typer.Exit(2 if failed else 0)


@review_app.command()
def reject(
    jobs: _Jobs,
    reason: Annotated[str, typer.Option("--reason", help="Why, for the record.")],
    by: _By = None,
) -> None:
    """Reject held jobs: they end REJECTED and nothing is published."""
    settings = get_settings()
    failed = False
    for text in jobs:
        job = _decide(settings, text, "reject", by, reason)
        failed = failed or job is None
        if job is not None:
            out.print(f"{job.id} rejected{_end_waiting_run(settings, job)}")
    raise typer.Exit(2 if failed else 0)


def _decide(
    settings: Settings, text: str, decision: review.Decision, by: str | None, reason: str | None
) -> Job | None:
    """Record ``decision`` on job ``text``; prints the one-line reason and returns None if not."""
    try:
        job_id = uuid.UUID(text)
    except ValueError:
        err.print(f"error: {text!r} is not a job id", markup=False)
        return None
    upgrade_schema(settings.database_url)
    try:
        return review.decide_now(
            settings.database_url,
            job_id=job_id,
            decision=decision,
            by=by or _login(),
            reason=reason,
        )
    except review.ReviewError as exc:
        err.print(f"error: {exc}", markup=False)
        return None


def _publish(settings: Settings, job: Job) -> str:
    """Start the run that publishes the approved ``job``; says where it runs."""
    from deployments.prefect_env import locate_api, prefect_api
    from flows.trigger import JobRef, after_decision

    try:
        api = locate_api(settings)
    except ConfigurationError as exc:
        return f"publishing failed: {exc}"
    if api.has_workers:  # a server with the deployment and its workers
        with prefect_api(api.url, api.auth):
            run_id = after_decision(JobRef.model_validate(job))
        return f"publishing in flow run {run_id}"
    try:
        api.wait()
        from flows.process_image import process_image

        with api.flow_here():
            result = process_image(job_id=job.id)
        return f"published here: {result['status']}"
    except Exception as exc:  # noqa: BLE001  (the job row has the details)
        return f"publishing failed: {type(exc).__name__}: {exc}"
    finally:
        api.stop()


def _end_waiting_run(settings: Settings, job: Job) -> str:
    """Cancel the run suspended for the rejected ``job``, if a Prefect server is up."""
    from deployments.prefect_env import auth_string, locate_api_url, prefect_api
    from flows.trigger import JobRef, after_decision

    try:
        url = locate_api_url(settings)
    except ConfigurationError as exc:
        return f" (its waiting flow run was not cancelled: {exc})"
    if url is None or job.flow_run_id is None:
        return ""
    try:
        with prefect_api(url, auth_string(settings)):
            after_decision(JobRef.model_validate(job))
    except Exception as exc:  # noqa: BLE001  (the decision stands; the run can be cancelled in the UI)
        return f" (its waiting flow run was not cancelled: {type(exc).__name__})"
    return ""


def _document(view: JobView, held_at: object) -> dict[str, object]:
    """One held job in ``review list --json``."""
    return {
        "jobId": str(view.job_id),
        "sku": view.sku,
        "theme": view.theme,
        "heldAt": held_at.isoformat() if hasattr(held_at, "isoformat") else None,
        "quality": view.quality.model_dump(by_alias=True) if view.quality else None,
    }


def _login() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"

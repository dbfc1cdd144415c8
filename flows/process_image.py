"""The per-image flow: one photo from source to manifest and storefront, every step a retrying task.

Run it ad hoc with::

    prefect deployment run 'process-image/default' \\
        --params '{"sku": "12345", "image_url": "https://…", "sha256": "…", "theme": "default"}'
"""

from __future__ import annotations

import re
import time
import uuid
from typing import Literal

from prefect import flow, unmapped
from prefect.artifacts import create_markdown_artifact
from prefect.context import FlowRunContext
from prefect.flow_runs import suspend_flow_run
from prefect.futures import wait
from prefect.input import RunInput
from prefect.runtime import deployment, flow_run
from prefect.task_runners import ThreadPoolTaskRunner
from pydantic import Field

from core.context import JobContext
from core.errors import InputError
from core.providers.registry import check_remover
from core.schemas import ImageJobSpec, JobView
from core.settings import get_settings
from core.tables import JobStatus, utcnow
from core.themes import resolve_theme
from tasks import (
    check_quality,
    composite,
    derivatives,
    download,
    generate_backgrounds,
    jobstate,
    prefetch,
    publish,
    remove_background,
    write_manifest,
)
from tasks._hooks import advance
from tasks.notify import CausedEvent, caused_events

__all__ = ["ReviewInput", "process_image", "process_one", "raise_failure"]


@flow(
    name="process-image",
    flow_run_name="{sku}-{theme}",
    task_runner=ThreadPoolTaskRunner(max_workers=4),  # type: ignore[arg-type]
    validate_parameters=True,
)
def process_image(
    sku: str | int | None = None,
    image_url: str | None = None,
    sha256: str | None = None,
    theme: str = "default",
    job_id: uuid.UUID | None = None,
    force: bool = False,
    segmenter: str | None = None,
) -> dict[str, object]:
    """Process one product photo: cutout, backgrounds, composites, derivatives, manifest, publish.

    A run started by the webhook, the dashboard or the CLI names its job by ``job_id`` and
    nothing else is read from its parameters: the source URL comes from the job table, so
    credentials in it never become flow-run parameters, which the Prefect API shows to anyone
    who may read runs (``sku`` and ``theme`` are passed too, for the run's name). An ad-hoc run
    names the image instead.

    Args:
        sku: product SKU (a number is taken as text); with ``image_url``.
        image_url: http(s) URL of the photo, for a run without ``job_id``.
        sha256: SHA-256 of the photo's bytes; computed from the download when omitted.
        theme: theme name (``default``, ``white``, or one from the themes file).
        job_id: the job to run (created by the webhook); the other image parameters are ignored.
        force: redo every step even when its outputs exist (a deliberate re-render).
        segmenter: a background remover for this run instead of ``PACKSHOT_SEGMENTER``
            (``freepik``: the review page's "Redo with Freepik"); checked before any work.
    """
    if segmenter is not None:
        check_remover(get_settings(), segmenter)
    request = job_id if job_id is not None else _spec(sku, image_url, sha256, theme)
    started = utcnow()
    result = process_one(request, force=force, segmenter=segmenter)
    # A failed run gets its summary too: it names the job.failed event the failure caused.
    _publish_artifacts(result, caused_events(str(result.job_id), started))
    if result.status == JobStatus.FAILED:
        raise_failure(result)
    return result.model_dump(mode="json", by_alias=True, exclude={"assets"})


def _spec(
    sku: str | int | None, image_url: str | None, sha256: str | None, theme: str
) -> ImageJobSpec:
    if sku is None or image_url is None:
        raise InputError("a run needs job_id, or sku and image_url")
    return ImageJobSpec(sku=str(sku), image_url=image_url, sha256=sha256, theme=theme)


def process_one(
    request: ImageJobSpec | uuid.UUID,
    *,
    force: bool = False,
    rerender: bool = False,
    segmenter: str | None = None,
) -> JobView:
    """Run every step for one image inside the current flow run; returns the job as it ended.

    ``request`` is an image (its job is found or created) or the id of an existing job.
    Failures are recorded on the job (``FAILED`` with step and error) and the job is returned;
    the caller decides whether the flow run fails. ``rerender`` redoes backgrounds, composites
    and derivatives but reuses the stored original and cutout; ``force`` redoes every step.
    """
    if isinstance(request, uuid.UUID):
        return _run_job(request, force=force, rerender=rerender, segmenter=segmenter)
    # The theme is resolved once, here: an unknown one fails before any work, and every step
    # of the run sees this version even if the themes file changes meanwhile.
    theme = resolve_theme(request.theme, get_settings().themes_file)
    started = time.perf_counter()
    prefetched = None
    if request.sha256 is None:
        prefetched = prefetch(request.sku, request.image_url)
        request = request.model_copy(update={"sha256": prefetched.sha256})
    ctx = jobstate.open_job(
        request,
        theme=theme,
        flow_run_id=flow_run.get_id(),
        force=force,
        rerender=rerender,
        segmenter=segmenter,
    )
    if prefetched is not None:
        jobstate.record_prefetch(ctx, prefetched, (time.perf_counter() - started) * 1000)
    return _run_steps_recorded(ctx, prefetched.key if prefetched is not None else None)


def _run_job(job_id: uuid.UUID, *, force: bool, rerender: bool, segmenter: str | None) -> JobView:
    """Open the existing job ``job_id`` and run it; a job that cannot start is FAILED."""
    try:
        ctx = jobstate.open_job(
            job_id,
            flow_run_id=flow_run.get_id(),
            force=force,
            rerender=rerender,
            segmenter=segmenter,
        )
    except LookupError:
        raise  # no such job: nothing to mark FAILED
    except Exception as exc:  # noqa: BLE001  (e.g. its theme is gone: recorded on the job)
        jobstate.fail(job_id, exc)
        return jobstate.view(job_id)
    return _run_steps_recorded(ctx, None)


def _run_steps_recorded(ctx: JobContext, original: str | None) -> JobView:
    """The steps for ``ctx``; the job ends DONE with its manifest, NEEDS_REVIEW when its
    quality verdict holds it, or FAILED with the error."""
    try:
        manifest_key = _run_steps(ctx, original=original)
    except Exception as exc:  # noqa: BLE001  (recorded on the job; the caller re-raises)
        jobstate.fail(ctx.job_id, exc)
        return jobstate.view(ctx.job_id)
    if manifest_key is not None:
        jobstate.finish(ctx.job_id, manifest_key)
    return jobstate.view(ctx.job_id)


def raise_failure(result: JobView) -> None:
    """Fail the flow run with the job's error, keeping bad input distinguishable."""
    message = f"{result.error_step}: {result.error}"
    if result.error_type == InputError.__name__:
        raise InputError(message)
    raise RuntimeError(message)


def _run_steps(ctx: JobContext, *, original: str | None) -> str | None:
    """The pipeline, in order; mapped steps run concurrently on the flow's thread pool.

    ``original`` is the stored source when it was already fetched (its sha256 was unknown).
    Returns the manifest's key once published, or None when the job is held for review.
    """
    if original is None:
        original = download(ctx)
    cutout = remove_background(ctx, original)
    backgrounds = generate_backgrounds(ctx)
    variants = list(range(1, len(backgrounds) + 1))
    composites = composite.map(unmapped(ctx), cutout.cutout_key, backgrounds, variants)
    renders = derivatives.map(unmapped(ctx), composites, variants)
    wait(composites)
    masters = composites.result()  # raises the first failure
    advance(ctx.job_id, JobStatus.COMPOSITED)
    renders.result()
    advance(ctx.job_id, JobStatus.DERIVATIVES)
    report = check_quality(ctx, cutout, masters)
    manifest_key = write_manifest(ctx)  # held or not, the set is complete and described
    if jobstate.hold_for_review(ctx, report) and not _decided_in_prefect(ctx):
        return None
    publish(ctx, manifest_key)
    return manifest_key


class ReviewInput(RunInput):
    """The form the Prefect UI shows a suspended run held for review."""

    decision: Literal["approve", "reject"] = Field(
        description="approve: publish the images; reject: publish nothing, the job ends REJECTED"
    )
    reason: str = Field("", description="why (required to reject)")
    by: str = Field("Prefect UI", description="who decides")


def _decided_in_prefect(ctx: JobContext) -> bool:
    """Wait for a decision the Prefect way; True when the job is approved and is to be published.

    Under a worker (a deployment run) the run suspends: its process exits and frees the worker
    slot, and the Prefect UI offers the ``ReviewInput`` form. Resumed from the UI, the run starts
    again, walks the stored steps, and ``suspend_flow_run`` hands over the input, which is
    recorded on the job like any decision. (``packshot review`` and the dashboard record the
    decision on the job first and then resume the run, which then is not held at all.) A run
    outside a deployment (``packshot process``), or a subflow of a batch (Prefect suspends
    whole runs only), ends here, the job held.
    """
    if deployment.get_id() is None or _is_subflow():
        return False
    answer = suspend_flow_run(wait_for_input=ReviewInput, key="review", timeout=None)
    return jobstate.record_decision(ctx, answer.decision, answer.by, answer.reason)


def _is_subflow() -> bool:
    context = FlowRunContext.get()
    return (
        context is not None
        and context.flow_run is not None
        and (context.flow_run.parent_task_run_id is not None)
    )


def _publish_artifacts(result: JobView, events: list[CausedEvent]) -> None:
    """One artifact for the Prefect UI: the steps with time and cost, the composites, and the
    outbound events the run caused."""
    lines = [
        f"### {result.sku} · {result.theme} · {result.status} · ${result.cost_usd:.4f}",
        "",
        "| step | state | attempts | ms | cost USD | provider |",
        "|---|---|---|---|---|---|",
    ]
    for s in result.steps:
        name = s.step if not s.variant else f"{s.step} #{s.variant}"
        ms = f"{s.ms:.0f}" if s.ms is not None else "–"
        lines.append(
            f"| {name} | {s.state} | {s.attempts} | {ms} | {s.cost_usd:.4f} | {s.provider or ''} |"
        )
    lines += ["", "Composites:", ""]
    lines += [
        f"- `{a.key}` ({a.width}×{a.height}, {a.bytes:,} bytes)"
        for a in result.assets
        if a.kind == "composite"
    ]
    lines += ["", f"Manifest: `{result.manifest_key}`"]
    if result.quality is not None:
        lines += [
            "",
            f"Quality: **{result.quality.verdict}** (score {result.quality.score:.2f})",
            "",
        ]
        lines += [
            f"- {'✓' if c.passed else '✗'} `{c.name}`: {c.detail}" for c in result.quality.checks
        ]
    lines += ["", "Events:" if events else "Events: none", ""]
    lines += [f"- `{e.type}` `{e.event_id}` → {e.target} ({e.state})" for e in events]
    key = re.sub(r"[^a-z0-9-]", "-", f"packshot-{result.sku}-{result.theme}".lower())[:100]
    create_markdown_artifact("\n".join(lines), key=key, description="Packshot job summary")

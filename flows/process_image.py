"""The per-image flow: one photo from source to manifest and storefront, every step a retrying task.

Run it ad hoc with::

    prefect deployment run 'process-image/default' \\
        --params '{"sku": "12345", "image_url": "https://…", "sha256": "…", "theme": "default"}'
"""

from __future__ import annotations

import re
import time

from prefect import flow, unmapped
from prefect.artifacts import create_markdown_artifact
from prefect.futures import wait
from prefect.runtime import flow_run
from prefect.task_runners import ThreadPoolTaskRunner

from core.errors import InputError
from core.schemas import ImageJobSpec, JobView
from core.settings import get_settings
from core.tables import JobStatus, utcnow
from core.themes import resolve_theme
from tasks import (
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
from tasks._policy import with_policy
from tasks.notify import CausedEvent, caused_events

__all__ = ["process_image", "process_one", "raise_failure"]


def _spec(sku: str | int, image_url: str, sha256: str | None, theme: str) -> ImageJobSpec:
    spec = ImageJobSpec(sku=str(sku), image_url=image_url, sha256=sha256, theme=theme)
    resolve_theme(spec.theme, get_settings().themes_file)  # unknown theme: fail before any work
    return spec


@flow(
    name="process-image",
    flow_run_name="{sku}-{theme}",
    task_runner=ThreadPoolTaskRunner(max_workers=4),  # type: ignore[arg-type]
    validate_parameters=True,
)
def process_image(
    sku: str | int,
    image_url: str,
    sha256: str | None = None,
    theme: str = "default",
    job_id: str | None = None,
    force: bool = False,
) -> dict[str, object]:
    """Process one product photo: cutout, backgrounds, composites, derivatives, manifest, publish.

    Args:
        sku: product SKU (a number is taken as text).
        image_url: http(s) URL of the photo.
        sha256: SHA-256 of the photo's bytes; computed from the download when omitted.
        theme: theme name (``default``, ``white``, or one from the themes file).
        job_id: the job row created by the webhook, when it triggered this run.
        force: redo every step even when its outputs exist (a deliberate re-render).
    """
    spec = _spec(sku, image_url, sha256, theme)
    started = utcnow()
    result = process_one(spec, job_id=job_id, force=force)
    # A failed run gets its summary too: it names the job.failed event the failure caused.
    _publish_artifacts(result, caused_events(str(result.job_id), started))
    if result.status == JobStatus.FAILED:
        raise_failure(result)
    return result.model_dump(mode="json", by_alias=True, exclude={"assets"})


def process_one(
    spec: ImageJobSpec,
    *,
    job_id: str | None = None,
    force: bool = False,
    rerender: bool = False,
) -> JobView:
    """Run every step for ``spec`` inside the current flow run; returns the job as it ended.

    Failures are recorded on the job (``FAILED`` with step and error) and the job is returned;
    the caller decides whether the flow run fails. ``rerender`` redoes backgrounds, composites
    and derivatives but reuses the stored original and cutout.
    """
    started = time.perf_counter()
    prefetched = None
    if spec.sha256 is None:
        prefetched = with_policy(prefetch)(spec.sku, spec.image_url)
        spec = spec.model_copy(update={"sha256": prefetched.sha256})
    job = jobstate.open_job(spec, flow_run_id=flow_run.get_id(), job_id=job_id, force=force)
    if prefetched is not None:
        jobstate.record_prefetch(
            job, prefetched, (time.perf_counter() - started) * 1000, spec.image_url
        )
    try:
        original = prefetched.key if prefetched is not None else None
        manifest_key = _run_steps(
            job, spec, original=original, force=force, rerender=rerender or force
        )
    except Exception as exc:  # noqa: BLE001  (recorded on the job; the caller re-raises)
        jobstate.fail(job, exc)
        return jobstate.view(job)
    jobstate.finish(job, manifest_key)
    return jobstate.view(job)


def raise_failure(result: JobView) -> None:
    """Fail the flow run with the job's error, keeping bad input distinguishable."""
    message = f"{result.error_step}: {result.error}"
    if (result.error or "").startswith("InputError"):
        raise InputError(message)
    raise RuntimeError(message)


def _run_steps(
    job: str, spec: ImageJobSpec, *, original: str | None, force: bool, rerender: bool
) -> str:
    """The pipeline, in order; mapped steps run concurrently on the flow's thread pool.

    ``original`` is the stored source when it was already fetched (its sha256 was unknown).
    """
    sku, sha, theme = spec.sku, spec.sha256 or "", spec.theme
    if original is None:
        original = with_policy(download)(job, sku, spec.image_url, sha)
    cutout = with_policy(remove_background)(job, sku, sha, original, spec.image_url, force)
    backgrounds = with_policy(generate_backgrounds)(job, sku, sha, theme, rerender)
    variants = list(range(1, len(backgrounds) + 1))
    composites = with_policy(composite).map(
        job, sku, sha, theme, cutout.cutout_key, backgrounds, variants, unmapped(rerender)
    )
    renders = with_policy(derivatives).map(
        job, sku, sha, theme, composites, variants, unmapped(rerender)
    )
    wait(composites)
    composites.result()  # raises the first failure
    advance(job, JobStatus.COMPOSITED)
    renders.result()
    advance(job, JobStatus.DERIVATIVES)
    manifest_key = with_policy(write_manifest)(job)
    with_policy(publish)(job, manifest_key)
    return manifest_key


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
    lines += ["", "Events:" if events else "Events: none", ""]
    lines += [f"- `{e.type}` `{e.event_id}` → {e.target} ({e.state})" for e in events]
    key = re.sub(r"[^a-z0-9-]", "-", f"packshot-{result.sku}-{result.theme}".lower())[:100]
    create_markdown_artifact("\n".join(lines), key=key, description="Packshot job summary")

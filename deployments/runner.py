"""Run one image through the flow in this process, against whichever Prefect API is available."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any

from core.db import session_scope, upgrade_schema
from core.errors import InputError, PipelineError
from core.heap import end_startup
from core.jobs import job_view
from core.schemas import ImageJobSpec, JobView
from core.settings import Settings, configure
from core.tables import Job
from deployments.prefect_env import PrefectApi, locate_api

__all__ = ["ProcessOutcome", "one_photo_settings", "run_process"]


def one_photo_settings() -> Settings:
    """Settings for one photo run in this process: local files are allowed as the source, and
    the local model uses the machine's cores (up to 4; a small model gains little beyond)
    unless PACKSHOT_SEGMENTER_THREADS says otherwise. Workers keep one thread per model, as
    they run photos side by side."""
    settings = configure(allow_local_sources=True)
    if "segmenter_threads" in settings.model_fields_set:
        return settings
    return configure(segmenter_threads=max(1, min(_usable_cpus(), 4)))


def _usable_cpus() -> int:
    """The cores this process may run on (its affinity where the OS has one, e.g. Linux)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _error_tree(base: type[BaseException]) -> frozenset[str]:
    return frozenset({base.__name__}).union(*(_error_tree(sub) for sub in base.__subclasses__()))


# Failures raised on purpose (bad input, a provider that stayed down …): their message says it
# all. Any other type on a failed job is a bug, and its traceback is worth showing.
_DELIBERATE_ERRORS = _error_tree(PipelineError)
# Exit code of a job held for review (NEEDS_REVIEW: its files exist, nothing was published).
EXIT_HELD = 3


@dataclass
class ProcessOutcome:
    """The job as it ended, and where the time went."""

    view: JobView | None
    error: str | None
    exit_code: int
    prefect: str
    timings_ms: dict[str, float] = field(default_factory=dict)
    error_type: str | None = None

    @property
    def unexpected(self) -> bool:
        """True when the job failed with an error the pipeline does not raise on purpose."""
        return self.exit_code not in (0, EXIT_HELD) and self.error_type not in _DELIBERATE_ERRORS

    @property
    def error_line(self) -> str | None:
        """The one line that says why the job did not finish; None when it did."""
        if self.exit_code == 0:
            return None
        if self.exit_code == EXIT_HELD and self.view is not None and self.view.quality:
            return f"held for review: {self.view.quality.summary()}"
        if self.view is not None and self.view.error:
            return f"error in {self.view.error_step}: {self.view.error}"
        return f"error: {self.error or f'job ended {self.view.status if self.view else None}'}"

    @property
    def document(self) -> dict[str, object]:
        """The ``--json`` object (docs/architecture.md, "Command line")."""
        if self.view is None:
            return {"status": "FAILED", "error": self.error, "timingsMs": self.timings_ms}
        doc = self.view.model_dump(mode="json", by_alias=True, exclude={"assets"})
        doc["assets"] = len(self.view.assets)
        doc["timingsMs"] = self.timings_ms
        return doc


def _warm_up(settings: Settings, parameters: dict[str, Any]) -> None:
    """Load what the flow needs while the Prefect server boots (model session, tables, code)."""
    upgrade_schema(settings.database_url)
    from core.providers.registry import load_models, new_generator

    load_models(settings)
    new_generator(settings)
    # Prefect's run engines are imported at a flow's first call otherwise; the flow's module
    # imports every task.
    from prefect import flow_engine, task_engine  # noqa: F401

    from flows.process_image import process_image

    # Prefect serializes the parameters as it creates the run, and loads FastAPI's encoder for
    # that (about 0.1 s): done once here, while the server boots, not after it answered.
    process_image.serialize_parameters(parameters)


def _find_job(settings: Settings, spec: ImageJobSpec, sha256: str | None) -> JobView | None:
    if not sha256:
        return None
    from sqlmodel import select

    with session_scope(settings.database_url) as session:
        query = select(Job).where(
            Job.sku == spec.sku, Job.sha256 == sha256, Job.theme == spec.theme
        )
        job = session.exec(query).first()
        return job_view(session, job_id=job.id) if job else None


def run_process(spec: ImageJobSpec, settings: Settings, *, force: bool = False) -> ProcessOutcome:
    """Run ``process_image`` for ``spec`` now; never raises for a failed job."""
    started = time.perf_counter()
    api = locate_api(settings)
    parameters: dict[str, Any] = {  # the flow's keywords
        "sku": spec.sku,
        "image_url": spec.image_url,
        "sha256": spec.sha256,
        "theme": spec.theme,
        "force": force,
    }
    _warm_up(settings, parameters)
    api.prepare()
    end_startup()  # what was loaded stays: no collection walks it again (core.heap)
    warm_ms = (time.perf_counter() - started) * 1000
    api.wait()
    from flows.process_image import process_image

    error: str | None = None
    error_type: str | None = None
    sha = spec.sha256
    flow_started = time.perf_counter()
    try:
        with api.flow_here():
            result = process_image(**parameters)
        sha = str(result.get("sha256") or sha)
    except Exception as exc:  # noqa: BLE001  (the job row has the details; we pick the exit code)
        error, error_type = f"{type(exc).__name__}: {exc}", type(exc).__name__
        if isinstance(exc, InputError) and not sha:  # refused before the job row existed
            view, code = None, 2
            return _outcome(view, error, code, api, (started, flow_started, warm_ms), error_type)
    finally:
        api.stop()
    view = _find_job(settings, spec, sha)
    code = 0 if view is not None and view.status == "DONE" else 1
    if view is not None and view.status == "NEEDS_REVIEW":
        code = EXIT_HELD
    if view is not None and view.status == "FAILED":
        error_type = view.error_type
        code = 2 if error_type == InputError.__name__ else 1
    return _outcome(view, error, code, api, (started, flow_started, warm_ms), error_type)


def _outcome(
    view: JobView | None,
    error: str | None,
    code: int,
    api: PrefectApi,
    clock: tuple[float, float, float],
    error_type: str | None,
) -> ProcessOutcome:
    """The outcome; ``clock`` is (start, flow start, warm-up ms)."""
    started, flow_started, warm_ms = clock
    now = time.perf_counter()
    timings = {
        "prefectStartupWait": round(api.startup_ms, 1),
        "warmUp": round(warm_ms, 1),
        "flow": round((now - flow_started) * 1000, 1),
        "total": round((now - started) * 1000, 1),
    }
    return ProcessOutcome(
        view=view,
        error=error,
        exit_code=code,
        prefect=api.kind,
        timings_ms=timings,
        error_type=error_type,
    )

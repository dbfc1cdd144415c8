"""The step decorator: a pipeline step is a Prefect task with the project's policy and tracking.

::

    @step(Step.COMPOSITE)
    def composite(ctx: JobContext, record: StepRecord, cutout_key: str, variant: int) -> str:
        ...

makes a Prefect task called ``composite`` whose callers pass ``(ctx, cutout_key, variant)``:

- **Retries** follow ``PACKSHOT_STEP_RETRIES`` and ``PACKSHOT_RETRY_BACKOFF_S``, read when the
  step is called (``tasks._policy.retry_options``), so a changed setting needs no re-import;
  only errors whose class says they are transient are retried.
- **Timeouts**: ``timeout_s`` for a step that is never mapped. A mapped step runs in a worker
  thread, where Prefect cannot interrupt it; its work must be bounded by the input limits.
- **Tracking**: every attempt writes its ``JobStep`` row (``tasks._hooks.tracked``): RUNNING
  with its attempt number, then COMPLETED or SKIPPED with time, cost, provider and assets, or
  RETRYING/FAILED with the error. The body fills in ``record``; a parameter named
  ``variant`` names the row's variant (mapped steps).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any, TypeVar

from prefect import Task

from core.context import JobContext
from core.settings import get_settings
from core.tables import Step
from tasks._hooks import StepRecord, tracked
from tasks._policy import FIXED_OPTIONS, retry_options

__all__ = ["StepRecord", "StepTask", "policy_task", "step"]

R = TypeVar("R")


class StepTask(Task[..., R]):
    """A Prefect task that takes its retry policy from the settings each time it is called."""

    def configured(self) -> Task[..., R]:
        """This task with the retry policy of the current settings (a plain ``Task``)."""
        return self.with_options(**retry_options(get_settings()))

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.configured()(*args, **kwargs)

    def submit(self, *args: Any, **kwargs: Any) -> Any:
        return self.configured().submit(*args, **kwargs)

    def map(self, *args: Any, **kwargs: Any) -> Any:
        return self.configured().map(*args, **kwargs)


def policy_task(fn: Callable[..., R], *, name: str, timeout_s: float | None) -> StepTask[R]:
    """``fn`` as a Prefect task with the step policy but no step row (work before a job exists)."""
    return StepTask(fn=fn, name=name, timeout_seconds=timeout_s, **FIXED_OPTIONS)


def step(
    kind: Step, *, timeout_s: float | None = None
) -> Callable[[Callable[..., R]], StepTask[R]]:
    """Make ``body(ctx, record, *args)`` the pipeline step ``kind`` (see the module docstring)."""

    def decorate(body: Callable[..., R]) -> StepTask[R]:
        signature = inspect.signature(body)
        first, second, *rest = signature.parameters.values()
        if (first.name, second.name) != ("ctx", "record"):
            raise TypeError(f"step {body.__name__} must take (ctx, record, ...)")

        @functools.wraps(body)
        def run(ctx: JobContext, *args: Any, **kwargs: Any) -> R:
            bound = signature.bind_partial(ctx, None, *args, **kwargs)
            variant = int(bound.arguments.get("variant") or 0)
            with tracked(ctx.job_id, kind, variant) as record:
                return body(ctx, record, *args, **kwargs)

        # What Prefect (and a reader of the task) sees: the body without ``record``.
        run.__signature__ = signature.replace(parameters=[first, *rest])  # type: ignore[attr-defined]
        return policy_task(run, name=kind.value, timeout_s=timeout_s)

    return decorate

"""The retry policy of every step, read from the settings in this one place.

Transient failures (the error's class says so: ``core.errors.is_retryable_error``) retry with
the project's backoff (``core.backoff``); bad input and configuration errors fail at once.
"""

from __future__ import annotations

from typing import Any

from prefect import Task
from prefect.cache_policies import NO_CACHE

from core.backoff import schedule
from core.errors import is_retryable_error
from core.settings import Settings

__all__ = ["FIXED_OPTIONS", "is_retryable", "retry_options"]

# Share of each retry delay Prefect draws at random, so steps that failed together (a
# provider's outage) do not all come back in the same second.
RETRY_JITTER = 0.5


def is_retryable(task: Task[Any, Any], task_run: object, state: Any) -> bool:
    """Prefect ``retry_condition_fn``: retry only errors whose class says they are transient."""
    exception = state.result(raise_on_failure=False)
    return isinstance(exception, BaseException) and is_retryable_error(exception)


# Steps decide for themselves whether their outputs already exist (content-addressed keys in
# the shared store), so Prefect's own result cache is off: a re-run on any machine skips
# finished work by looking at the store, and no pixels are ever persisted as task results.
FIXED_OPTIONS: dict[str, Any] = {
    "retry_condition_fn": is_retryable,
    "cache_policy": NO_CACHE,
    "persist_result": False,
}


def retry_options(settings: Settings) -> dict[str, Any]:
    """Prefect task options for ``PACKSHOT_STEP_RETRIES`` and ``PACKSHOT_RETRY_BACKOFF_S``."""
    return {
        "retries": settings.step_retries,
        "retry_delay_seconds": schedule(
            max(settings.step_retries, 1), first=settings.retry_backoff_s
        ),
        "retry_jitter_factor": RETRY_JITTER,
    }

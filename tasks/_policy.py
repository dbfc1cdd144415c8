"""Shared retry policy of every step: transient failures retry with backoff, bad input fails now."""

from __future__ import annotations

from typing import Any, TypeVar

from prefect import Task
from prefect.cache_policies import NO_CACHE

from core.backoff import schedule
from core.errors import is_retryable_error
from core.settings import get_settings

__all__ = ["STEP_OPTIONS", "is_retryable", "with_policy"]

T = TypeVar("T", bound=Task[Any, Any])


def is_retryable(task: Task[Any, Any], task_run: object, state: Any) -> bool:
    """Prefect ``retry_condition_fn``: retry only errors whose class says they are transient."""
    exception = state.result(raise_on_failure=False)
    return isinstance(exception, BaseException) and is_retryable_error(exception)


# Steps decide for themselves whether their outputs already exist (content-addressed keys in
# the shared store), so Prefect's own result cache is off: a re-run on any machine skips
# finished work by looking at the store, and no pixels are ever persisted as task results.
STEP_OPTIONS: dict[str, Any] = {
    "retries": 3,
    "retry_delay_seconds": [2.0, 4.0, 8.0],
    "retry_jitter_factor": 0.5,
    "retry_condition_fn": is_retryable,
    "cache_policy": NO_CACHE,
    "persist_result": False,
}


def with_policy(task: T) -> T:
    """``task`` with the retry count and backoff from the settings (read at run time)."""
    settings = get_settings()
    delays = schedule(max(settings.step_retries, 1), first=settings.retry_backoff_s)
    return task.with_options(  # type: ignore[return-value]
        retries=settings.step_retries,
        retry_delay_seconds=delays,
        retry_jitter_factor=0.5,
    )

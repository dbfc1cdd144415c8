"""Cross-worker limits on Freepik calls, as Prefect global concurrency limits (GCLs).

- ``freepik-rate``: a rate limit. Every HTTP request to Freepik takes one slot; slots decay at
  ``PACKSHOT_FREEPIK_RATE_PER_SECOND`` (default 9/s) and at most ``PACKSHOT_FREEPIK_RATE_BURST``
  (default 50) are taken at once. Worst case over two minutes: 50 + 9 × 120 = 1130 requests,
  9.4/s, under the documented 10/s average; over five seconds 95, under the 50/s burst.
- ``freepik-inflight``: a concurrency limit. A provider call holds one slot from its first
  Freepik request until it returns (a Mystic task is held while it is polled).

The server counts for every worker on every machine, so the limits hold whatever the number
of workers. :func:`freepik_limits` installs the gate around a provider call; a call that never
reaches Freepik (local model, gradient) never touches Prefect. The limits are created by
:func:`ensure_limits` (``packshot up``), and created on first use in a process when missing, so
``strict=True`` (an unknown limit name is an error, never silently skipped) cannot fail a step
on a fresh server.

Outside a Prefect run (a step's ``.fn()`` in unit tests, a REPL, ``packshot segment``) there is
no run to attach slots to and often no API: the wrapper does nothing there, and the client's
own backoff on HTTP 429 is the only brake. One process making one call at a time stays far
below Freepik's limits.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from typing import TYPE_CHECKING

from core.clients.freepik import request_gate
from core.errors import ConfigurationError, ProviderRateLimited, ProviderUnavailable
from core.settings import Settings, get_settings

if TYPE_CHECKING:
    from prefect.client.schemas.responses import GlobalConcurrencyLimitResponse

__all__ = ["FREEPIK_INFLIGHT", "FREEPIK_RATE", "ensure_limits", "freepik_limits", "limit_specs"]

FREEPIK_RATE = "freepik-rate"
FREEPIK_INFLIGHT = "freepik-inflight"

_ensured: set[str] = set()
_ensured_lock = threading.Lock()


def limit_specs(settings: Settings) -> dict[str, tuple[int, float]]:
    """Limit name → (slots, slot decay per second) from the settings."""
    return {
        FREEPIK_RATE: (settings.freepik_rate_burst, settings.freepik_rate_per_second),
        FREEPIK_INFLIGHT: (settings.freepik_inflight, 0.0),
    }


def ensure_limits(
    settings: Settings | None = None, *, update: bool = True
) -> dict[str, GlobalConcurrencyLimitResponse]:
    """Create (or, with ``update``, correct and re-activate) the Freepik limits; idempotent.

    Args:
        settings: whose values to use; the process settings by default.
        update: also change existing limits whose values differ (bring-up does; the lazy
            creation on first use does not, so workers never fight over the values).

    Returns:
        The limits as the server holds them afterwards, by name.
    """
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import (
        GlobalConcurrencyLimitCreate,
        GlobalConcurrencyLimitUpdate,
    )
    from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound

    specs = limit_specs(settings or get_settings())
    found: dict[str, GlobalConcurrencyLimitResponse] = {}
    with get_client(sync_client=True) as client:
        for name, (limit, decay) in specs.items():
            try:
                current = client.read_global_concurrency_limit_by_name(name)
            except ObjectNotFound:
                create = GlobalConcurrencyLimitCreate(
                    name=name, limit=limit, slot_decay_per_second=decay, active=True
                )
                with suppress(ObjectAlreadyExists):  # another worker was quicker
                    client.create_global_concurrency_limit(create)
            else:
                stale = (current.limit, current.slot_decay_per_second, current.active)
                if update and stale != (limit, decay, True):
                    change = GlobalConcurrencyLimitUpdate(
                        limit=limit, slot_decay_per_second=decay, active=True
                    )
                    client.update_global_concurrency_limit(name, change)
            found[name] = client.read_global_concurrency_limit_by_name(name)
    return found


def _in_prefect_run() -> bool:
    from prefect.context import FlowRunContext, TaskRunContext

    return FlowRunContext.get() is not None or TaskRunContext.get() is not None


def _ensure_once(settings: Settings) -> None:
    from prefect.settings import PREFECT_API_URL

    api = str(PREFECT_API_URL.value() or "ephemeral")
    with _ensured_lock:
        if api in _ensured:
            return
        ensure_limits(settings, update=False)
        _ensured.add(api)


@contextmanager
def _slot_errors(name: str, wait_s: float) -> Iterator[None]:
    """Prefect's slot-acquisition errors as the pipeline's error tree."""
    from prefect.concurrency.asyncio import ConcurrencySlotAcquisitionError

    try:
        yield
    except TimeoutError as exc:
        raise ProviderRateLimited(
            f"no {name} slot within {wait_s:g} s: other workers are using Freepik"
        ) from exc
    except ConcurrencySlotAcquisitionError as exc:
        if exc.__cause__ is None:  # strict: the limit does not exist
            raise ConfigurationError(f"Prefect concurrency limit {name!r}: {exc}") from exc
        raise ProviderUnavailable(f"Prefect could not grant a {name} slot: {exc}") from exc


@contextmanager
def freepik_limits(settings: Settings | None = None) -> Iterator[None]:
    """Run a provider call under the Freepik limits (inside a Prefect run; see the module).

    The in-flight slot is taken at the call's first Freepik request and held until the block
    ends; every request (retries included) first takes a rate slot.

    Raises:
        ProviderRateLimited: no slot within ``PACKSHOT_FREEPIK_LIMIT_WAIT_S`` (retryable).
        ConfigurationError: a limit is missing and could not be created.
    """
    if not _in_prefect_run():
        yield
        return
    from prefect.concurrency.sync import concurrency, rate_limit

    s = settings or get_settings()
    wait = s.freepik_limit_wait_s
    with ExitStack() as held:
        inflight: list[bool] = []

        def gate() -> None:
            if not inflight:
                _ensure_once(s)
                with _slot_errors(FREEPIK_INFLIGHT, wait):
                    held.enter_context(
                        concurrency(FREEPIK_INFLIGHT, occupy=1, timeout_seconds=wait, strict=True)
                    )
                inflight.append(True)
            with _slot_errors(FREEPIK_RATE, wait):
                rate_limit(FREEPIK_RATE, occupy=1, timeout_seconds=wait, strict=True)

        with request_gate(gate):
            yield

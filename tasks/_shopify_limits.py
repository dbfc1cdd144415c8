"""Cross-worker limits on Shopify Admin API calls, as Prefect global concurrency limits (GCLs).

- ``shopify-inflight``: a concurrency limit of ``PACKSHOT_SHOPIFY_INFLIGHT`` (default 4); every
  Admin API request holds one slot while it is on the wire.
- ``shopify-rate``: a rate limit; every request takes one slot, and slots decay at
  ``PACKSHOT_SHOPIFY_RATE`` per second (default 4).

Shopify's own bucket is per app and store, shared by every worker; the client reads it from
each answer and waits when it runs low, and these limits keep the workers from emptying it
together in the first place. They are created by :func:`ensure_shopify_limits` (bring-up) and
on first use in a process when missing, so ``strict=True`` (an unknown name is an error, never
silently skipped) cannot fail a step on a fresh server. Outside a Prefect run (``packshot
publish --dry-run``, unit tests) the gate does nothing.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager, nullcontext

from core.clients.shopify import Gate
from core.errors import ConfigurationError, PublishError
from core.settings import Settings, get_settings

__all__ = ["SHOPIFY_INFLIGHT", "SHOPIFY_RATE", "ensure_shopify_limits", "shopify_gate"]

SHOPIFY_INFLIGHT = "shopify-inflight"
SHOPIFY_RATE = "shopify-rate"

_ensured: set[str] = set()
_ensured_lock = threading.Lock()


def _specs(settings: Settings) -> dict[str, tuple[int, float | None]]:
    """Limit name → (slots, slot decay per second)."""
    return {
        SHOPIFY_INFLIGHT: (settings.shopify_inflight, None),
        SHOPIFY_RATE: (max(1, math.ceil(settings.shopify_rate)), settings.shopify_rate),
    }


def ensure_shopify_limits(settings: Settings | None = None) -> None:
    """Create both limits, or set them to the configured values; idempotent."""
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        for name, (limit, decay) in _specs(settings or get_settings()).items():
            client.upsert_global_concurrency_limit_by_name(name, limit, slot_decay_per_second=decay)


def _ensure_once(settings: Settings) -> None:
    from prefect.settings import PREFECT_API_URL

    api = str(PREFECT_API_URL.value() or "ephemeral")
    with _ensured_lock:
        if api not in _ensured:
            ensure_shopify_limits(settings)
            _ensured.add(api)


def _in_prefect_run() -> bool:
    from prefect.context import FlowRunContext, TaskRunContext

    return FlowRunContext.get() is not None or TaskRunContext.get() is not None


@contextmanager
def _slot(settings: Settings) -> Iterator[None]:
    from prefect.concurrency.asyncio import ConcurrencySlotAcquisitionError
    from prefect.concurrency.sync import concurrency, rate_limit

    wait = settings.shopify_limit_wait_s
    with ExitStack() as held:
        try:
            rate_limit(SHOPIFY_RATE, occupy=1, timeout_seconds=wait, strict=True)
            held.enter_context(
                concurrency(SHOPIFY_INFLIGHT, occupy=1, timeout_seconds=wait, strict=True)
            )
        except TimeoutError as exc:
            raise PublishError(f"no Shopify request slot within {wait:g} s") from exc
        except ConcurrencySlotAcquisitionError as exc:
            if exc.__cause__ is None:  # strict: the limit does not exist
                raise ConfigurationError(f"Prefect limit for Shopify missing: {exc}") from exc
            raise PublishError(f"Prefect could not grant a Shopify slot: {exc}") from exc
        yield


def shopify_gate(settings: Settings) -> Gate:
    """The per-request gate for the Shopify client: both limits inside a Prefect run."""

    def gate() -> AbstractContextManager[object]:
        if not _in_prefect_run():
            return nullcontext()
        _ensure_once(settings)
        return _slot(settings)

    return gate

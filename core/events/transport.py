"""The HTTP client of the event sender: ``core.netguard``'s guarded connections, pooled.

Every new connection goes through ``core.netguard.GuardedBackend``, the one source downloads
use: it resolves the target's host itself, refuses loopback, link-local and private addresses
(unless ``PACKSHOT_NOTIFY_ALLOW_PRIVATE``) and connects to exactly the addresses it checked, so
a DNS answer that changes between check and connect (rebinding) cannot reach an internal
service. TLS still verifies the certificate for the target's host name; no redirect is
followed and no proxy is read from the environment.

A download builds a client per URL with one ``Deadline``. The sender instead keeps one pooled
client for all deliveries, sent side by side from several threads, so its deadline is per
thread: ``deadline(seconds)`` bounds every connect, TLS handshake, read and write of the
delivery running on this thread, and a receiver that drips its answer cannot hold it longer.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager

import httpx

from core.netguard import Deadline, GuardedBackend, GuardedTransport, Resolver, system_resolver

__all__ = ["ALLOW_SETTING", "deadline", "new_client"]

ALLOW_SETTING = "PACKSHOT_NOTIFY_ALLOW_PRIVATE"


class _ThreadDeadline(Deadline):
    """The deadline of the delivery running on the calling thread (none: no limit)."""

    def __init__(self) -> None:
        super().__init__(math.inf)
        self._local = threading.local()

    def remaining(self) -> float:
        end: float | None = getattr(self._local, "end", None)
        return math.inf if end is None else end - time.monotonic()

    @contextmanager
    def limit(self, seconds: float) -> Iterator[None]:
        self._local.end = time.monotonic() + seconds
        try:
            yield
        finally:
            self._local.end = None


_DEADLINE = _ThreadDeadline()


def deadline(seconds: float) -> AbstractContextManager[None]:
    """Inside the block, this thread's requests on event clients end within ``seconds``."""
    return _DEADLINE.limit(seconds)


def new_client(
    *,
    allow_private: bool,
    connect_timeout_s: float,
    timeout_s: float,
    resolver: Resolver = system_resolver,
) -> httpx.Client:
    """An httpx client for event deliveries (send each request inside ``deadline``).

    A refused target raises ``core.errors.InputError`` from the request (naming
    ``PACKSHOT_NOTIFY_ALLOW_PRIVATE``); a name that does not resolve ``ProviderUnavailable``.
    """
    backend = GuardedBackend(
        resolver,
        allow_private=allow_private,
        deadline=_DEADLINE,
        subject="event target host",
        setting=ALLOW_SETTING,
    )
    return httpx.Client(
        transport=GuardedTransport(backend),
        timeout=httpx.Timeout(timeout_s, connect=connect_timeout_s),
        follow_redirects=False,
        trust_env=False,
        headers={"User-Agent": "Packshot-Events/1"},
    )

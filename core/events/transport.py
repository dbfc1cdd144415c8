"""The HTTP client of the event sender: only checked addresses, no redirects, a total deadline.

httpx follows no redirect here and reads no proxy from the environment. Every new connection
goes through ``GuardedBackend``: it resolves the target's host, refuses loopback, link-local
and private addresses (unless allowed) with the same resolver and address rule as source
downloads (``core.download``, ``core.urls.is_public_address``), and connects to an address it
has just checked, so a DNS answer that changes between check and connect (rebinding) cannot
reach an internal service. TLS still verifies the certificate for the target's host name.

httpx's timeouts bound each connect, read and write; ``deadline`` bounds the whole request, so
a receiver that drips its answer byte by byte cannot hold a delivery longer than its budget.
"""

from __future__ import annotations

import threading
import time
import typing
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import httpcore
import httpx

from core.download import Resolver
from core.download import _system_resolver as system_resolver
from core.urls import is_public_address

__all__ = ["GuardedBackend", "TargetRefused", "checked_addresses", "deadline", "new_client"]


class TargetRefused(Exception):
    """The target's host resolves to an address events may not go to; the message says which."""


class _Deadline(threading.local):
    at: float | None = None


_deadline = _Deadline()


@contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Every network operation of this thread inside the block ends within ``seconds``."""
    _deadline.at = time.monotonic() + seconds
    try:
        yield
    finally:
        _deadline.at = None


def _left(timeout: float | None, error: type[Exception]) -> float | None:
    """``timeout`` shortened to what is left of the deadline; ``error`` once nothing is."""
    if _deadline.at is None:
        return timeout
    left = _deadline.at - time.monotonic()
    if left <= 0:
        raise error("the delivery's total time is up")
    return left if timeout is None else min(timeout, left)


class _DeadlineStream(httpcore.NetworkStream):
    """A connection whose reads and writes respect the thread's delivery deadline."""

    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, _left(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, _left(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self,
        ssl_context: typing.Any,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        left = _left(timeout, httpcore.ConnectTimeout)
        return _DeadlineStream(self._inner.start_tls(ssl_context, server_hostname, left))

    def get_extra_info(self, info: str) -> typing.Any:
        return self._inner.get_extra_info(info)


def checked_addresses(
    host: str, port: int, *, allow_private: bool, resolver: Resolver
) -> list[str]:
    """The addresses of ``host`` that a connection may use, in the resolver's order.

    Raises:
        TargetRefused: any address is loopback, link-local, private or otherwise not public
            (unless ``allow_private``), or the host has none.
        httpcore.ConnectError: the name does not resolve.
    """
    try:
        addresses = list(dict.fromkeys(resolver(host, port)))
    except (OSError, UnicodeError) as exc:
        raise httpcore.ConnectError(f"cannot resolve host {host}: {exc}") from exc
    if allow_private and addresses:
        return addresses
    blocked = [address for address in addresses if not is_public_address(address)]
    if blocked or not addresses:
        raise TargetRefused(
            f"host {host} resolves to a loopback, link-local or private address "
            f"({', '.join(blocked) or 'none'}); set PACKSHOT_NOTIFY_ALLOW_PRIVATE=true to allow"
        )
    return addresses


class GuardedBackend(httpcore.NetworkBackend):
    """Opens TCP connections only to addresses ``checked_addresses`` accepted, checked each time."""

    def __init__(self, *, allow_private: bool, resolver: Resolver = system_resolver) -> None:
        self.allow_private = allow_private
        self.resolver = resolver
        self._inner = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[typing.Any] | None = None,
    ) -> httpcore.NetworkStream:
        addresses = checked_addresses(
            host, port, allow_private=self.allow_private, resolver=self.resolver
        )
        failure: Exception | None = None
        for address in addresses:  # the checked address itself, never the name again
            try:
                stream = self._inner.connect_tcp(
                    address,
                    port,
                    _left(timeout, httpcore.ConnectTimeout),
                    local_address,
                    socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
                continue
            return _DeadlineStream(stream)
        assert failure is not None
        raise failure

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[typing.Any] | None = None,
    ) -> httpcore.NetworkStream:
        raise httpcore.ConnectError("event targets are TCP URLs")


class _GuardedTransport(httpx.HTTPTransport):
    def __init__(self, backend: GuardedBackend, *, connections: int) -> None:
        super().__init__(trust_env=False)
        # httpx takes no network backend of its own: its pool is swapped for one that connects
        # through ours (same settings as httpx's, no proxy).
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=False),
            max_connections=connections,
            max_keepalive_connections=connections,
            keepalive_expiry=5.0,
            network_backend=backend,
        )


def new_client(
    *,
    allow_private: bool,
    connect_timeout_s: float,
    timeout_s: float,
    connections: int = 8,
    resolver: Resolver = system_resolver,
) -> httpx.Client:
    """An httpx client for event deliveries (use each request inside ``deadline``)."""
    backend = GuardedBackend(allow_private=allow_private, resolver=resolver)
    return httpx.Client(
        transport=_GuardedTransport(backend, connections=connections),
        timeout=httpx.Timeout(timeout_s, connect=connect_timeout_s),
        follow_redirects=False,
        trust_env=False,
        headers={"User-Agent": "Packshot-Events/1"},
    )

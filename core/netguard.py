"""Connections of the source downloader: only to checked addresses, and within a deadline.

``GuardedTransport`` is an httpx transport whose connections are opened by ``GuardedBackend``:
it resolves the host itself, refuses it when any address is private (unless allowed), and
connects to exactly the addresses it checked. A DNS answer that changes between the check and
the connection (rebinding) therefore never reaches an internal service: nothing is sent to an
address that was not checked. Every socket operation (connect, TLS handshake, each read and
write) waits at most until the ``Deadline``, so a whole download ends on time however slowly
its bytes arrive.
"""

from __future__ import annotations

import math
import socket
import ssl
import time
import typing
from collections.abc import Callable, Iterable

import httpcore
import httpx

from core.errors import InputError, ProviderUnavailable
from core.urls import is_public_address

__all__ = [
    "Deadline",
    "GuardedBackend",
    "GuardedTransport",
    "Resolver",
    "checked_addresses",
    "system_resolver",
]

Resolver = Callable[[str, int], list[str]]
# httpcore's SOCKET_OPTION (not exported by name).
_SocketOption = (
    tuple[int, int, int] | tuple[int, int, bytes | bytearray] | tuple[int, int, None, int]
)
# The shortest wait handed to a socket: an expired deadline still lets a read that is already
# complete return, and then ends the download where it is checked.
_MIN_WAIT_S = 0.001


def system_resolver(host: str, port: int) -> list[str]:
    """The addresses of ``host`` from the system resolver (``socket.getaddrinfo``)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def checked_addresses(
    host: str,
    port: int,
    resolver: Resolver,
    *,
    allow_private: bool,
    subject: str = "image URL host",
    setting: str = "PACKSHOT_ALLOW_PRIVATE_SOURCES",
) -> list[str]:
    """The addresses of ``host``, every one of them public unless ``allow_private``.

    ``subject`` and ``setting`` name, in the refusal, what the host is for and the setting
    that allows private addresses (outbound events have their own).

    Raises:
        InputError: the host resolves to a private, loopback or other non-public address.
        ProviderUnavailable: the name does not resolve (DNS may come back).
    """
    try:
        addresses = list(dict.fromkeys(resolver(host, port)))
    except (OSError, UnicodeError) as exc:
        raise ProviderUnavailable(f"cannot resolve host {host}: {exc}") from exc
    if allow_private:
        return addresses
    blocked = [a for a in addresses if not is_public_address(a)]
    if blocked or not addresses:
        raise InputError(
            f"{subject} {host} resolves to a private or loopback address "
            f"({', '.join(blocked) or 'none'}); set {setting}=true to allow"
        )
    return addresses


class Deadline:
    """The moment a download must be over, and the longest silence allowed while reading."""

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds = seconds
        self._clock = clock
        self._end = clock() + seconds
        self.read_limit: float | None = None

    def remaining(self) -> float:
        """Seconds left (negative once past)."""
        return self._end - self._clock()

    @property
    def expired(self) -> bool:
        """True once the deadline has passed."""
        return self.remaining() <= 0

    def wait(self, timeout: float | None, *, reading: bool = False) -> float:
        """``timeout`` shortened to the time left (and to ``read_limit`` for reads)."""
        limit = math.inf if timeout is None else timeout
        if reading and self.read_limit is not None:
            limit = min(limit, self.read_limit)
        return max(min(limit, self.remaining()), _MIN_WAIT_S)


class _DeadlineStream(httpcore.NetworkStream):
    """A connection whose every wait ends at the deadline."""

    def __init__(self, inner: httpcore.NetworkStream, deadline: Deadline) -> None:
        self._inner = inner
        self._deadline = deadline

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, self._deadline.wait(timeout, reading=True))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, self._deadline.wait(timeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        wait = self._deadline.wait(timeout)
        return _DeadlineStream(
            self._inner.start_tls(ssl_context, server_hostname, wait), self._deadline
        )

    def get_extra_info(self, info: str) -> typing.Any:
        return self._inner.get_extra_info(info)


class GuardedBackend(httpcore.NetworkBackend):
    """Opens connections to checked addresses only, each bound to ``deadline``.

    Args:
        resolver: host, port → addresses; the only name resolution a download does.
        allow_private: accept loopback and private addresses (demo, tests).
        deadline: when every wait of every connection ends.
        inner: what opens the TCP connection to an address (httpcore's sync backend).
        subject, setting: how a refusal names the host and the setting that allows it.
    """

    def __init__(
        self,
        resolver: Resolver,
        *,
        allow_private: bool,
        deadline: Deadline,
        inner: httpcore.NetworkBackend | None = None,
        subject: str = "image URL host",
        setting: str = "PACKSHOT_ALLOW_PRIVATE_SOURCES",
    ) -> None:
        self._resolver = resolver
        self._allow_private = allow_private
        self._deadline = deadline
        self._inner = inner or httpcore.SyncBackend()
        self._subject, self._setting = subject, setting

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[_SocketOption] | None = None,
    ) -> httpcore.NetworkStream:
        addresses = checked_addresses(
            host,
            port,
            self._resolver,
            allow_private=self._allow_private,
            subject=self._subject,
            setting=self._setting,
        )
        failure: httpcore.ConnectError | httpcore.ConnectTimeout | None = None
        for address in addresses:  # the checked addresses, never the name again
            try:
                stream = self._inner.connect_tcp(
                    address,
                    port,
                    timeout=self._deadline.wait(timeout),
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
                continue
            return _DeadlineStream(stream, self._deadline)
        assert failure is not None  # checked_addresses never returns an empty list
        raise failure

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[_SocketOption] | None = None,
    ) -> httpcore.NetworkStream:
        raise httpcore.ConnectError("downloads never use unix sockets")

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


class GuardedTransport(httpx.HTTPTransport):
    """httpx's own transport (HTTP/1.1, TLS verified) over a ``GuardedBackend``; no proxies."""

    def __init__(self, backend: GuardedBackend) -> None:
        super().__init__(trust_env=False)
        # httpx builds its connection pool without a way to choose the network backend: the
        # pool is replaced by one that has it (same TLS settings; a download needs few
        # connections, so httpcore's default limits do).
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=False), network_backend=backend
        )

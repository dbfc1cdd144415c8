"""Free loopback TCP ports, for servers the tests and benchmarks start."""

from __future__ import annotations

import contextlib
import socket


def free_port() -> int:
    """A port nobody listens on right now (the OS picks it; there is no reservation)."""
    return free_ports(1)[0]


def free_ports(count: int) -> list[int]:
    """``count`` different ports nobody listens on right now, for one stack's servers.

    All are held open until every one is picked: asked one at a time, the OS may hand out a
    port it just handed out (a stack then found its dashboard's port taken by its Prefect
    server).
    """
    with contextlib.ExitStack() as held:
        sockets = [held.enter_context(socket.socket()) for _ in range(count)]
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in sockets]

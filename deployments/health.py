"""Whether a service Packshot starts answers yet: one check, and the wait for the first 200.

Used for the stack's services (``packshot up``), the background Prefect server a command waits
for, and the Prefect API a stack's shutdown cancels its flow runs through.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx

__all__ = ["answers_ok", "wait_until_ok"]


def answers_ok(url: str, timeout: float = 1.0, client: httpx.Client | None = None) -> bool:
    """True when a GET of ``url`` answers 200 within ``timeout`` seconds.

    Pass ``client`` when polling: each new client loads the CA bundle (10-20 ms of CPU),
    which a poll every 50 ms would take from the server it waits for.
    """
    get = httpx.get if client is None else client.get
    try:
        return get(url, timeout=timeout).status_code == 200
    except httpx.HTTPError:
        return False


def wait_until_ok(
    url: str,
    timeout: float,
    *,
    name: str | None = None,
    alive: Callable[[], bool] | None = None,
    interval: float = 0.3,
    request_timeout: float = 2.0,
    verify: bool = True,
) -> float:
    """Poll ``url`` with one client until it answers 200; return the seconds waited.

    ``alive`` says whether the process that is to answer still runs: once it has exited,
    waiting on is pointless. ``verify=False`` spares the client the CA bundle; only for plain
    HTTP on loopback, where there is no certificate to check.

    Raises:
        RuntimeError: ``alive()`` turned False before an answer (``name`` exited ...).
        TimeoutError: no answer within ``timeout`` seconds.
    """
    what = name or url
    started = time.monotonic()
    with httpx.Client(verify=verify) as client:
        while not answers_ok(url, timeout=request_timeout, client=client):
            if alive is not None and not alive():
                raise RuntimeError(f"{what} exited before it was ready")
            if time.monotonic() - started > timeout:
                raise TimeoutError(f"{what} not ready after {timeout:.0f} s")
            time.sleep(interval)
    return time.monotonic() - started

"""Safe download of a source image: http(s) only, no private addresses, capped size, time and pace.

Every hop (the URL, then each redirect) is checked as a whole URL first. Connections are opened
by ``core.netguard``: the host is resolved once, every address checked, and the connection made
to those very addresses, so a DNS answer that changes between check and connect (rebinding)
never reaches an internal service. A download ends within ``deadline_s`` however its bytes
trickle in, and a body slower than ``min_rate_bps`` over any ``rate_window_s`` is abandoned at
once; both fail as bad input (not retried): the same source would be as slow again.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urljoin

import httpx

from core.errors import InputError, ProviderUnavailable
from core.netguard import Deadline, GuardedBackend, GuardedTransport, Resolver, system_resolver
from core.urls import redact_url, url_problem

__all__ = ["DownloadPolicy", "Downloaded", "Resolver", "download_source"]

_REDIRECTS = {301, 302, 303, 307, 308}
# Identity encoding: the size cap and the pace count the bytes that travel.
_HEADERS = {"user-agent": "packshot", "accept-encoding": "identity"}


@dataclass(frozen=True)
class DownloadPolicy:
    """Limits of one download (the settings ``PACKSHOT_DOWNLOAD_*`` and ``_MAX_*``)."""

    max_bytes: int = 25_000_000
    max_redirects: int = 3
    allow_private: bool = False
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 30.0
    deadline_s: float = 60.0
    min_rate_bps: int = 20_000
    rate_window_s: float = 5.0
    resolver: Resolver = system_resolver


@dataclass(frozen=True)
class Downloaded:
    """The downloaded bytes and what was learnt on the way."""

    data: bytes
    sha256: str
    final_url: str
    content_type: str | None


def _rate(bytes_per_s: float) -> str:
    if bytes_per_s >= 1000:
        return f"{bytes_per_s / 1000:.1f} KB/s"
    return f"{bytes_per_s:.0f} B/s"


class _Pace:
    """Fails a body that brings fewer than ``min_rate_bps`` over a ``rate_window_s`` span."""

    def __init__(self, policy: DownloadPolicy, clock: Callable[[], float] = time.monotonic) -> None:
        self._min = policy.min_rate_bps
        self._window = policy.rate_window_s
        self._clock = clock
        self._mark_at = clock()
        self._mark_bytes = 0

    def check(self, total: int) -> None:
        if not self._min:
            return
        now = self._clock()
        span = now - self._mark_at
        if span < self._window:
            return
        rate = (total - self._mark_bytes) / span
        if rate < self._min:
            raise InputError(
                f"source too slow: {_rate(rate)} below the minimum {_rate(self._min)} "
                "(PACKSHOT_DOWNLOAD_MIN_RATE_BPS)"
            )
        self._mark_at, self._mark_bytes = now, total


def _check_url(url: str) -> None:
    problem = url_problem(url)
    if problem is not None:
        raise InputError(f"image URL {problem}: {redact_url(url)}")


def _status_error(response: httpx.Response, url: str) -> Exception:
    status = response.status_code
    where = redact_url(url)
    if status == 429 or status >= 500:
        return ProviderUnavailable(f"image host answered HTTP {status} for {where}")
    return InputError(f"image host answered HTTP {status} for {where}")


def _timeout_error(url: str, policy: DownloadPolicy, deadline: Deadline) -> Exception:
    """What a timeout means: past the deadline, a stalled body, or a host slow to answer."""
    if deadline.expired:
        return InputError(
            f"download exceeded {policy.deadline_s:g} s (PACKSHOT_DOWNLOAD_DEADLINE_S): "
            f"{redact_url(url)}"
        )
    if deadline.read_limit is not None:  # the body had started: nothing came for a window
        return InputError(
            f"source too slow: nothing received for {policy.rate_window_s:g} s, below the "
            f"minimum {_rate(policy.min_rate_bps)} (PACKSHOT_DOWNLOAD_MIN_RATE_BPS)"
        )
    return ProviderUnavailable(f"timed out downloading {redact_url(url)}")


def _read_body(response: httpx.Response, policy: DownloadPolicy, deadline: Deadline) -> bytes:
    declared = response.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > policy.max_bytes:
        raise InputError(
            f"image is {int(declared):,} bytes; the limit is {policy.max_bytes:,} bytes"
        )
    if policy.min_rate_bps:
        # A silence as long as the window is a rate of zero: no read waits longer.
        deadline.read_limit = policy.rate_window_s
    pace = _Pace(policy)
    chunks: list[bytes] = []
    total = 0
    for chunk in response.iter_bytes():  # as the bytes arrive, so every chunk is paced
        total += len(chunk)
        if total > policy.max_bytes:
            raise InputError(f"image is larger than the limit of {policy.max_bytes:,} bytes")
        chunks.append(chunk)
        if deadline.expired:
            raise _timeout_error(str(response.url), policy, deadline)
        pace.check(total)
    return b"".join(chunks)


def _fetch(
    client: httpx.Client, url: str, policy: DownloadPolicy, deadline: Deadline
) -> Downloaded:
    current = url
    for _hop in range(policy.max_redirects + 1):
        _check_url(current)
        deadline.read_limit = None  # waiting for an answer: the read timeout applies
        try:
            with client.stream("GET", current, follow_redirects=False) as response:
                if response.status_code in _REDIRECTS and "location" in response.headers:
                    current = urljoin(current, response.headers["location"])
                    continue
                if response.status_code != 200:
                    raise _status_error(response, current)
                data = _read_body(response, policy, deadline)
                content_type = response.headers.get("content-type")
        except httpx.TimeoutException as exc:
            raise _timeout_error(current, policy, deadline) from exc
        except httpx.InvalidURL as exc:
            raise InputError(f"image URL is not valid: {redact_url(current)}") from exc
        except httpx.TransportError as exc:
            raise ProviderUnavailable(
                f"network error downloading {redact_url(current)}: {type(exc).__name__}"
            ) from exc
        if not data:
            raise InputError(f"image URL returned an empty body: {redact_url(current)}")
        digest = hashlib.sha256(data).hexdigest()
        return Downloaded(data=data, sha256=digest, final_url=current, content_type=content_type)
    raise InputError(f"more than {policy.max_redirects} redirects for {redact_url(url)}")


def download_source(url: str, policy: DownloadPolicy) -> Downloaded:
    """GET ``url`` under ``policy``, following at most ``policy.max_redirects`` redirects.

    Raises:
        InputError: a malformed URL, a private address, 4xx, too large, too many redirects,
            empty, past the deadline, or slower than the minimum rate.
        ProviderUnavailable: the host does not resolve, answer or connect in time, a network
            error, 429 or 5xx (worth a retry).
    """
    deadline = Deadline(policy.deadline_s)
    backend = GuardedBackend(policy.resolver, allow_private=policy.allow_private, deadline=deadline)
    timeout = httpx.Timeout(policy.read_timeout_s, connect=policy.connect_timeout_s)
    transport = GuardedTransport(backend)
    with httpx.Client(transport=transport, timeout=timeout, headers=_HEADERS) as client:
        return _fetch(client, url, policy, deadline)

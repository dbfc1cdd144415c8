"""Thin Freepik (Magnific) API client over an injected ``httpx.Client`` (docs/integrations.md).

The ``httpx.Client`` carries the base URL and timeouts (:func:`new_http_client`); the key is
added per request, to API paths only, never to result downloads on other hosts. Failures
become the pipeline's error tree here:

- 429 → :class:`ProviderRateLimited` (``retry_after`` from ``Retry-After`` when sent);
- 5xx, timeouts, network errors → :class:`ProviderUnavailable`;
- 400 / 422 → :class:`ProviderRejected` naming the ``invalid_params`` (``name`` or ``field``);
- 401 / 402 / 403 → :class:`ConfigurationError` (key, credits, plan), never retried;
- 404 and other 4xx → :class:`ProviderRejected`;
- a 2xx body that is not JSON → :class:`ProviderUnavailable`: a truncated body or a gateway's
  HTML page is what a flaky path produces, and a later call usually gets clean JSON. JSON
  without the documented fields → :class:`ProviderRejected`: the contract changed, and
  repeating the call (and paying again) cannot fix that.

Retryable failures are repeated here a bounded number of times (exponential backoff with
jitter, ``Retry-After`` honoured up to a cap), so a fallback segmenter acts only after them.
Requests that may already have done paid work (a POST whose answer timed out) are not
repeated here; the step's declared retries decide. Every request first passes the gate
installed with :func:`request_gate` (cross-worker rate limits), if any.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import httpx
from pydantic import SecretStr

from core.backoff import backoff_s
from core.clients._freepik_answers import (
    Downloaded,
    MysticTask,
    RemovedBackground,
    invalid_params,
    json_object,
    maybe_json,
    message_of,
    parse_retry_after,
    text_field,
)
from core.clients._freepik_answers import mystic_task as parse_mystic
from core.errors import (
    ConfigurationError,
    PipelineError,
    ProviderRateLimited,
    ProviderRejected,
    ProviderUnavailable,
)
from core.urls import redact_url

__all__ = [
    "Downloaded",
    "FreepikClient",
    "MysticTask",
    "RemovedBackground",
    "invalid_params",
    "new_http_client",
    "parse_retry_after",
    "request_gate",
]

REMOVE_BACKGROUND_PATH = "/v1/ai/beta/remove-background"
MYSTIC_PATH = "/v1/ai/mystic"

_CONFIG_ERRORS = {
    401: "Freepik rejected the API key (HTTP 401): check PACKSHOT_FREEPIK_API_KEY "
    "and PACKSHOT_FREEPIK_AUTH_HEADER",
    402: "Freepik refused the call: no credits left on the account (HTTP 402)",
    403: "Freepik refused the call for this API key's plan (HTTP 403)",
}

_gate: ContextVar[Callable[[], None] | None] = ContextVar("freepik_request_gate", default=None)


@contextmanager
def request_gate(gate: Callable[[], None]) -> Iterator[None]:
    """Call ``gate()`` before every Freepik request made in this context (this thread).

    The tasks layer uses it to take Prefect rate-limit slots without ``core`` knowing Prefect.
    """
    token = _gate.set(gate)
    try:
        yield
    finally:
        _gate.reset(token)


def new_http_client(
    base_url: str, *, connect_timeout_s: float, read_timeout_s: float
) -> httpx.Client:
    """The ``httpx.Client`` a :class:`FreepikClient` is built on: base URL and timeouts."""
    timeout = httpx.Timeout(read_timeout_s, connect=connect_timeout_s)
    return httpx.Client(
        base_url=base_url.rstrip("/"), timeout=timeout, headers={"user-agent": "packshot"}
    )


class FreepikClient:
    """Calls of the two Freepik endpoints the pipeline uses, plus result downloads.

    Args:
        http: client with the base URL and timeouts set (see :func:`new_http_client`).
        api_key: the key; sent only to the API's own host.
        auth_header: header carrying it (``x-freepik-api-key`` or ``x-magnific-api-key``).
        max_retries: in-client repeats of a retryable failure.
        backoff_s: first repeat delay; doubles per repeat, with ±50 % jitter.
        max_retry_after_s: longest ``Retry-After`` waited here; a longer one is raised.
        sleep: how to wait (tests pass a recorder).
    """

    def __init__(
        self,
        http: httpx.Client,
        *,
        api_key: SecretStr,
        auth_header: str = "x-freepik-api-key",
        max_retries: int = 2,
        backoff_s: float = 1.0,
        max_retry_after_s: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.http = http
        self._key = api_key
        self.auth_header = auth_header
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.max_retry_after_s = max_retry_after_s
        self._sleep = sleep

    def __repr__(self) -> str:
        return f"FreepikClient(base_url={str(self.http.base_url)!r})"

    def remove_background(self, image_url: str) -> RemovedBackground:
        """``POST /v1/ai/beta/remove-background`` with the ``image_url`` form field."""
        response, attempts = self._call(
            "POST", REMOVE_BACKGROUND_PATH, data={"image_url": image_url}
        )
        body = json_object(response, "remove-background")
        high = body.get("high_resolution") or body.get("url")
        if not isinstance(high, str) or not high.startswith(("http://", "https://")):
            raise ProviderRejected("Freepik remove-background answered without a result URL")
        return RemovedBackground(
            high_resolution=high,
            preview=text_field(body, "preview"),
            original=text_field(body, "original"),
            url=text_field(body, "url"),
            attempts=attempts,
        )

    def create_mystic_task(self, payload: dict[str, object]) -> MysticTask:
        """``POST /v1/ai/mystic`` with a JSON body; returns the task as created."""
        response, attempts = self._call("POST", MYSTIC_PATH, json=payload)
        return parse_mystic(json_object(response, "mystic"), attempts)

    def mystic_task(self, task_id: str) -> MysticTask:
        """``GET /v1/ai/mystic/{task_id}``: the task's status and, once done, its images."""
        response, attempts = self._call("GET", f"{MYSTIC_PATH}/{task_id}")
        return parse_mystic(json_object(response, "mystic status"), attempts)

    def download(self, url: str, *, max_bytes: int) -> Downloaded:
        """Fetch a result file at once (its URL expires); no API key is sent.

        Raises:
            ProviderUnavailable: 403/404/410 (the URL expired), 5xx, network errors.
            ProviderRejected: the file is larger than ``max_bytes``.
        """
        response, attempts = self._call("GET", url, download=True)
        data = response.content
        if len(data) > max_bytes:
            raise ProviderRejected(f"Freepik result is {len(data):,} bytes; limit {max_bytes:,}")
        return Downloaded(
            data=data, content_type=response.headers.get("content-type"), attempts=attempts
        )

    # --- one call with bounded retries ---------------------------------------------------------

    def _call(
        self, method: str, url: str, *, download: bool = False, **kwargs: Any
    ) -> tuple[httpx.Response, int]:
        attempt = 0
        while True:
            attempt += 1
            try:
                return self._send(method, url, download=download, **kwargs), attempt
            except ProviderRateLimited as exc:
                wait = exc.retry_after
                if wait is not None and wait > self.max_retry_after_s:
                    raise
                if attempt > self.max_retries:
                    raise
                self._sleep(wait if wait is not None else self._backoff(attempt))
            except _Repeatable as exc:
                if attempt > self.max_retries:
                    raise exc.error from exc.__cause__
                self._sleep(self._backoff(attempt))

    def _backoff(self, attempt: int) -> float:
        return backoff_s(attempt, first=self.backoff_s)

    def _send(self, method: str, url: str, *, download: bool, **kwargs: Any) -> httpx.Response:
        gate = _gate.get()
        if gate is not None:
            gate()
        headers = {} if download else {self.auth_header: self._key.get_secret_value()}
        shown = redact_url(url) if download else url
        try:
            response = self.http.request(
                method, url, headers=headers, follow_redirects=download, **kwargs
            )
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            # The request never reached Freepik: always safe to repeat.
            raise _Repeatable(
                ProviderUnavailable(f"cannot reach Freepik ({shown}): {exc!r}")
            ) from exc
        except httpx.TimeoutException as exc:
            error = ProviderUnavailable(f"Freepik did not answer in time ({method} {shown})")
            if method == "GET":
                raise _Repeatable(error) from exc
            raise error from exc
        except httpx.TransportError as exc:
            error = ProviderUnavailable(f"network error talking to Freepik ({shown}): {exc!r}")
            if method == "GET":
                raise _Repeatable(error) from exc
            raise error from exc
        if response.is_success:
            return response
        raise self._status_error(response, method, shown, download)

    def _status_error(
        self, response: httpx.Response, method: str, shown: str, download: bool
    ) -> Exception:
        status = response.status_code
        if download and status in (401, 403, 404, 410):
            return ProviderUnavailable(
                f"Freepik result URL is gone (HTTP {status}): it expired before the download "
                f"({shown}); the call will be made again"
            )
        if status == 429:
            retry_after = parse_retry_after(response.headers.get("retry-after"))
            hint = f", retry after {retry_after:g} s" if retry_after is not None else ""
            return ProviderRateLimited(f"Freepik rate limit hit (HTTP 429{hint})", retry_after)
        if status >= 500 or status == 408:
            message = self._scrub(message_of(response))
            return _Repeatable(
                ProviderUnavailable(
                    f"Freepik unavailable (HTTP {status}) on {method} {shown}: {message}"
                )
            )
        if status in _CONFIG_ERRORS and not download:
            return ConfigurationError(_CONFIG_ERRORS[status])
        body = maybe_json(response)
        params = invalid_params(body)
        detail = f"; invalid: {', '.join(params)}" if params else ""
        message = self._scrub(message_of(response))
        return ProviderRejected(
            f"Freepik rejected {method} {shown} (HTTP {status}): {message}{detail}"
        )

    def _scrub(self, text: str) -> str:
        """Never echo the key, even if an error body quotes it."""
        secret = self._key.get_secret_value()
        return text.replace(secret, "***") if secret else text


class _Repeatable(Exception):
    """Carries a retryable error out of one attempt; ``_call`` raises the error itself."""

    def __init__(self, error: PipelineError) -> None:
        super().__init__(str(error))
        self.error = error

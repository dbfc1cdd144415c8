"""Thin Shopify Admin GraphQL client over an injected ``httpx.Client`` (docs/integrations.md).

``POST {base}/admin/api/{version}/graphql.json`` with ``X-Shopify-Access-Token``. Every answer's
``extensions.cost.throttleStatus`` is remembered, and the next call waits first when the bucket
is low. Failures become the pipeline's error tree at this boundary:

- THROTTLED (HTTP 200 with ``errors[].extensions.code``, or HTTP 429): wait ``Retry-After`` or
  ``(requestedQueryCost - currentlyAvailable) / restoreRate`` (+ jitter), try again (bounded);
- 401: a client-credentials token is fetched again once, a fixed token is a ConfigurationError;
- 402 / 423 (shop frozen / locked): permanent PublishError; 403 / 404: ConfigurationError;
- 5xx, INTERNAL_SERVER_ERROR and network errors: queries are repeated here; mutations only when
  the request cannot have reached Shopify (connect errors), otherwise a retryable PublishError
  (the publisher looks at the shop again before repeating anything: no media mutation is
  idempotent);
- ``userErrors`` become :class:`ShopifyUserError` naming the field, message and code.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

import httpx

from core.backoff import backoff_s
from core.clients.shopify_auth import TokenSource, shop_base_url, token_source
from core.errors import ConfigurationError, PublishError
from core.settings import Settings

__all__ = ["ShopifyClient", "ShopifyUserError", "Throttle", "shop_base_url"]

Gate = Callable[[], AbstractContextManager[object]]

_PERMANENT = {402: "the shop is frozen (unpaid)", 423: "the shop is locked"}
_CONFIG = {
    403: "access forbidden (app scopes?)",
    404: "shop not found: check PACKSHOT_SHOPIFY_SHOP",
}
_MAX_WAIT_S = 60.0


class ShopifyUserError(PublishError):
    """A mutation answered ``userErrors``; ``codes`` lists their codes (may be empty)."""

    def __init__(self, message: str, codes: tuple[str, ...] = (), permanent: bool = True) -> None:
        super().__init__(message, permanent=permanent)
        self.codes = tuple(codes)

    def __reduce__(self) -> tuple[type, tuple[str, tuple[str, ...], bool]]:  # type: ignore[override]
        return (type(self), (self.message, self.codes, self.permanent))


@dataclass(frozen=True)
class Throttle:
    """The cost bucket as the last answer described it, and when (monotonic seconds)."""

    maximum: float
    available: float
    restore_rate: float
    requested: float
    at: float


class ShopifyClient:
    """Admin GraphQL calls with throttling, token refresh and typed errors.

    Args:
        http: the HTTP client; base URL and timeouts are set where it is built.
        endpoint: ``{base}/admin/api/{version}/graphql.json``.
        token: where the access token comes from.
        max_attempts: attempts per call (throttling, network errors, 5xx on queries).
        reserve: points to keep in the bucket; below it the next call waits first.
        gate: entered around every request (cross-worker limits); nothing by default.
        sleep: how to wait (tests pass a fake clock's sleep).
        clock: monotonic seconds.
    """

    def __init__(
        self,
        http: httpx.Client,
        *,
        endpoint: str,
        token: TokenSource,
        max_attempts: int = 5,
        reserve: float = 50.0,
        gate: Gate | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.http = http
        self.endpoint = endpoint
        self.token = token
        self.max_attempts = max_attempts
        self.reserve = reserve
        self._gate: Gate = gate or nullcontext
        self._sleep = sleep
        self._clock = clock
        self._lock = threading.Lock()
        self._throttle: Throttle | None = None

    @classmethod
    def from_settings(
        cls, settings: Settings, *, http: httpx.Client | None = None, gate: Gate | None = None
    ) -> ShopifyClient:
        """The client the settings describe (fixed token, or client id + secret)."""
        base = shop_base_url(settings)
        http = http or httpx.Client(timeout=settings.shopify_timeout_s, follow_redirects=False)
        token = token_source(settings, http, base)
        endpoint = f"{base}/admin/api/{settings.shopify_api_version}/graphql.json"
        return cls(
            http,
            endpoint=endpoint,
            token=token,
            max_attempts=settings.shopify_max_attempts,
            gate=gate,
        )

    @property
    def throttle(self) -> Throttle | None:
        """The bucket as last seen."""
        return self._throttle

    def query(self, document: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        """Run a read; returns ``data``. Network errors and 5xx are repeated here."""
        return self._call(document, variables or {}, repeatable=True)

    def mutate(self, document: str, variables: dict[str, Any], *, root: str) -> dict[str, Any]:
        """Run a mutation; returns ``data[root]``; userErrors raise :class:`ShopifyUserError`."""
        data = self._call(document, variables, repeatable=False)
        payload = data.get(root)
        if not isinstance(payload, dict):
            raise PublishError(f"Shopify answered no {root} payload", permanent=True)
        errors = payload.get("userErrors") or payload.get("mediaUserErrors") or []
        if errors:
            raise ShopifyUserError(
                self._redact(f"{root}: " + "; ".join(_user_error_text(e) for e in errors)),
                tuple(str(e["code"]) for e in errors if e.get("code")),
            )
        return payload

    def _call(
        self, document: str, variables: dict[str, Any], *, repeatable: bool
    ) -> dict[str, Any]:
        payload = {"query": document, "variables": variables}
        refreshed = False
        for attempt in range(1, self.max_attempts + 1):
            last = attempt == self.max_attempts
            self._wait_for_bucket()
            try:
                response = self._send(payload)
            except httpx.TransportError as exc:
                unsent = isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout)
                if (repeatable or unsent) and not last:
                    self._backoff(attempt)
                    continue
                raise PublishError(f"Shopify request failed: {type(exc).__name__}") from None
            if response.status_code == 401:
                if not self.token.refreshable or refreshed:
                    raise ConfigurationError("Shopify rejected the access token (HTTP 401)")
                self.token.invalidate()
                refreshed = True
                continue
            body = _json(response)
            self._observe(body)
            wait = self._again_after(response, body, attempt, repeatable=repeatable)
            if wait is not None:
                self._sleep(wait)
                continue
            assert body is not None
            data = body.get("data")
            return data if isinstance(data, dict) else {}
        raise PublishError("Shopify: no answer after a token refresh")

    def _again_after(
        self,
        response: httpx.Response,
        body: dict[str, Any] | None,
        attempt: int,
        *,
        repeatable: bool,
    ) -> float | None:
        """Seconds to wait before trying again, None for a usable answer; raises otherwise."""
        status, last = response.status_code, attempt == self.max_attempts
        if status == 429 or _has_code(body, "THROTTLED"):
            if last:
                raise PublishError(f"Shopify kept throttling after {attempt} attempts")
            return self._throttle_wait(response)
        if status in _PERMANENT:
            raise PublishError(f"Shopify: {_PERMANENT[status]} (HTTP {status})", permanent=True)
        if status in _CONFIG:
            raise ConfigurationError(f"Shopify: {_CONFIG[status]} (HTTP {status})")
        if status >= 500 or _has_code(body, "INTERNAL_SERVER_ERROR"):
            if repeatable and not last:
                return _backoff_s(attempt)
            raise PublishError(f"Shopify server error (HTTP {status})")
        if status != 200 or body is None:
            raise PublishError(f"Shopify answered HTTP {status}", permanent=True)
        if body.get("errors"):
            raise self._graphql_error(body["errors"])
        return None

    def _send(self, payload: dict[str, Any]) -> httpx.Response:
        headers = {"X-Shopify-Access-Token": self.token.get(), "Accept": "application/json"}
        with self._gate():
            return self.http.post(self.endpoint, json=payload, headers=headers)

    def _observe(self, body: dict[str, Any] | None) -> None:
        cost = ((body or {}).get("extensions") or {}).get("cost") or {}
        status = cost.get("throttleStatus") or {}
        try:
            seen = Throttle(
                maximum=float(status["maximumAvailable"]),
                available=float(status["currentlyAvailable"]),
                restore_rate=float(status["restoreRate"]),
                requested=float(cost.get("requestedQueryCost") or 0.0),
                at=self._clock(),
            )
        except (KeyError, TypeError, ValueError):
            return
        with self._lock:
            self._throttle = seen

    def _wait_for_bucket(self) -> None:
        """Wait until the bucket has ``reserve`` (or the last call's cost) points again."""
        with self._lock:
            seen = self._throttle
        if seen is None or seen.restore_rate <= 0:
            return
        now = seen.available + (self._clock() - seen.at) * seen.restore_rate
        need = min(max(self.reserve, seen.requested), seen.maximum)
        if now < need:
            self._sleep(min((need - now) / seen.restore_rate, _MAX_WAIT_S))

    def _throttle_wait(self, response: httpx.Response) -> float:
        retry_after = response.headers.get("Retry-After")
        wait: float | None = None
        if retry_after:
            try:
                wait = float(retry_after)
            except ValueError:
                wait = None
        seen = self._throttle
        if wait is None and seen is not None and seen.restore_rate > 0:
            wait = max(seen.requested - seen.available, 0.0) / seen.restore_rate
        if wait is None:
            wait = 1.0
        return min(wait + random.uniform(0, 0.1 * wait + 0.1), _MAX_WAIT_S)

    def _backoff(self, attempt: int) -> None:
        self._sleep(_backoff_s(attempt))

    def _graphql_error(self, errors: list[dict[str, Any]]) -> Exception:
        text = self._redact("; ".join(str(e.get("message", e)) for e in errors)[:500])
        if _has_code({"errors": errors}, "ACCESS_DENIED") or "access denied" in text.lower():
            return ConfigurationError(
                f"Shopify denied access ({text}): the app needs read_products, write_products, "
                "read_files and write_files"
            )
        return PublishError(f"Shopify GraphQL error: {text}", permanent=True)

    def _redact(self, text: str) -> str:
        for secret in self.token.secrets():
            if secret:
                text = text.replace(secret, "***")
        return text


def _backoff_s(attempt: int) -> float:
    """Up to 0.5, 1, 2, 4, 8 s (half of it drawn at random)."""
    return backoff_s(attempt, first=0.5, cap=8.0)


def _json(response: httpx.Response) -> dict[str, Any] | None:
    try:
        body = response.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def _has_code(body: dict[str, Any] | None, code: str) -> bool:
    errors = (body or {}).get("errors")
    if not isinstance(errors, list):
        return False
    return any(
        isinstance(e, dict) and (e.get("extensions") or {}).get("code") == code for e in errors
    )


def _user_error_text(error: dict[str, Any]) -> str:
    field = ".".join(str(part) for part in error.get("field") or [])
    code = f" ({error['code']})" if error.get("code") else ""
    return f"{field or 'input'}: {error.get('message', '')}{code}"

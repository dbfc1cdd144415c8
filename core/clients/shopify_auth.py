"""Shopify Admin API access tokens: a fixed ``shpat_`` token, or the client-credentials grant.

Apps created in the admin before 2026 have a non-expiring token. Apps created since 2026-01-01
(Dev Dashboard) fetch one with ``POST https://{shop}.myshopify.com/admin/oauth/access_token``
(``grant_type=client_credentials``); it lives about 24 h, so it is fetched again shortly before
``expires_in`` runs out, and once more when the API answers 401.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Protocol

import httpx
from pydantic import SecretStr

from core.errors import ConfigurationError, PublishError
from core.settings import Settings

__all__ = ["ClientCredentialsToken", "StaticToken", "TokenSource", "shop_base_url", "token_source"]


class TokenSource(Protocol):
    """Where the ``X-Shopify-Access-Token`` value comes from."""

    refreshable: bool

    def get(self) -> str:
        """The current token (fetched or refreshed when needed)."""
        ...

    def invalidate(self) -> None:
        """Forget the current token: the API rejected it."""
        ...

    def secrets(self) -> tuple[str, ...]:
        """Every secret value this source knows, for redaction."""
        ...


class StaticToken:
    """A fixed admin-created ``shpat_`` token; a 401 cannot be fixed by asking again."""

    refreshable = False

    def __init__(self, token: SecretStr) -> None:
        self._token = token

    def get(self) -> str:
        """The token."""
        return self._token.get_secret_value()

    def invalidate(self) -> None:
        """Nothing to refresh."""

    def secrets(self) -> tuple[str, ...]:
        """The token."""
        return (self._token.get_secret_value(),)


class ClientCredentialsToken:
    """A token from the client-credentials grant, refreshed before it expires.

    Args:
        http: the HTTP client (no Shopify headers on it).
        url: ``https://{shop}.myshopify.com/admin/oauth/access_token``.
        client_id: the app's client id.
        client_secret: the app's client secret.
        margin_s: refresh this many seconds before ``expires_in`` runs out (at most half of it).
        clock: monotonic seconds (tests pass a fake clock).
    """

    refreshable = True

    def __init__(
        self,
        http: httpx.Client,
        *,
        url: str,
        client_id: str,
        client_secret: SecretStr,
        margin_s: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._http = http
        self._url = url
        self._client_id = client_id
        self._secret = client_secret
        self._margin = margin_s
        self._clock = clock
        self._token: str | None = None
        self._refresh_at = 0.0
        self._lock = threading.Lock()
        self.fetches = 0

    def get(self) -> str:
        """The current token; fetched when missing or about to expire."""
        with self._lock:
            if self._token is None or self._clock() >= self._refresh_at:
                self._fetch()
            assert self._token is not None
            return self._token

    def invalidate(self) -> None:
        """Drop the token so the next ``get`` fetches a new one."""
        with self._lock:
            self._token = None

    def secrets(self) -> tuple[str, ...]:
        """The client secret and the current token."""
        values = [self._secret.get_secret_value()]
        if self._token:
            values.append(self._token)
        return tuple(values)

    def _fetch(self) -> None:
        form = {
            "grant_type": "client_credentials",
            "client_id": self._client_id,
            "client_secret": self._secret.get_secret_value(),
        }
        try:
            response = self._http.post(self._url, data=form, headers={"Accept": "application/json"})
        except httpx.TransportError as exc:
            raise PublishError(f"Shopify token request failed: {type(exc).__name__}") from None
        if response.status_code >= 500 or response.status_code == 429:
            raise PublishError(f"Shopify token request failed: HTTP {response.status_code}")
        if response.status_code != 200:
            raise ConfigurationError(
                f"Shopify refused the client-credentials grant (HTTP {response.status_code}): "
                "check PACKSHOT_SHOPIFY_CLIENT_ID / _CLIENT_SECRET and that the app is installed"
            )
        try:
            body = response.json()
            token = str(body["access_token"])
            expires_in = float(body.get("expires_in") or 86_399)
        except (ValueError, KeyError, TypeError):
            raise PublishError("Shopify token answer is not the expected JSON") from None
        self._token = token
        self._refresh_at = self._clock() + max(expires_in - self._margin, expires_in / 2)
        self.fetches += 1


def shop_base_url(settings: Settings) -> str:
    """``https://{shop}.myshopify.com`` from the settings (the shop name alone or its domain)."""
    if not settings.shopify_shop:
        raise ConfigurationError("PACKSHOT_SHOPIFY_SHOP is not set (PACKSHOT_PUBLISHER=shopify)")
    shop = settings.shopify_shop.strip().removeprefix("https://").split("/")[0]
    shop = shop.removesuffix(".myshopify.com")
    return settings.shopify_base_url.format(shop=shop).rstrip("/")


def token_source(settings: Settings, http: httpx.Client, base_url: str) -> TokenSource:
    """A fixed token when one is set, else the client-credentials grant; else ConfigurationError."""
    if settings.shopify_access_token is not None:
        return StaticToken(settings.shopify_access_token)
    if settings.shopify_client_id and settings.shopify_client_secret is not None:
        return ClientCredentialsToken(
            http,
            url=f"{base_url}/admin/oauth/access_token",
            client_id=settings.shopify_client_id,
            client_secret=settings.shopify_client_secret,
        )
    raise ConfigurationError(
        "Shopify credentials missing: set PACKSHOT_SHOPIFY_ACCESS_TOKEN, or "
        "PACKSHOT_SHOPIFY_CLIENT_ID and PACKSHOT_SHOPIFY_CLIENT_SECRET"
    )

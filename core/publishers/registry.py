"""Publisher registry and factory: ``PACKSHOT_PUBLISHER`` chooses the implementation.

An unknown name, or ``shopify`` without a shop or credentials, is a ``ConfigurationError`` at
start-up (``check_publisher``), never a surprise at the last step of a run.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from core.errors import ConfigurationError
from core.publishers.base import Publisher

if TYPE_CHECKING:
    from core.clients.shopify import Gate
    from core.settings import Settings
    from core.storage import ObjectStore

__all__ = ["PUBLISHERS", "check_publisher", "new_publisher"]


def _none(settings: Settings, store: ObjectStore, gate: Gate | None) -> Publisher:
    from core.publishers.none import NonePublisher

    return NonePublisher()


def _shopify(settings: Settings, store: ObjectStore, gate: Gate | None) -> Publisher:
    from core.publishers.shopify import ShopifyPublisher

    return ShopifyPublisher.from_settings(settings, store, gate=gate)


PUBLISHERS: dict[str, Callable[[Settings, ObjectStore, Gate | None], Publisher]] = {
    "none": _none,
    "shopify": _shopify,
}


def check_publisher(settings: Settings) -> None:
    """Fail when the publisher is unknown or, for ``shopify``, not configured enough to start."""
    if settings.publisher not in PUBLISHERS:
        known = ", ".join(sorted(PUBLISHERS))
        raise ConfigurationError(f"unknown publisher {settings.publisher!r}; known: {known}")
    if settings.publisher == "shopify":
        from core.clients.shopify_auth import shop_base_url

        shop_base_url(settings)
        has_grant = settings.shopify_client_id and settings.shopify_client_secret is not None
        if settings.shopify_access_token is None and not has_grant:
            raise ConfigurationError(
                "PACKSHOT_PUBLISHER=shopify needs PACKSHOT_SHOPIFY_ACCESS_TOKEN, or "
                "PACKSHOT_SHOPIFY_CLIENT_ID and PACKSHOT_SHOPIFY_CLIENT_SECRET"
            )


def new_publisher(settings: Settings, *, store: ObjectStore, gate: Gate | None = None) -> Publisher:
    """The publisher named by ``settings.publisher``.

    Args:
        settings: the process settings.
        store: where the composites are read from.
        gate: entered around every storefront request (cross-worker limits).

    Raises:
        ConfigurationError: unknown name, or missing shop or credentials.
    """
    check_publisher(settings)
    return PUBLISHERS[settings.publisher](settings, store, gate)

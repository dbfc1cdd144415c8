"""Price table of paid provider calls (USD, from settings) and cost estimates before a run.

Defaults and why (change them with the ``PACKSHOT_PRICE_*_USD`` settings):

- ``remove-background``: Freepik publishes no price; 0.12 USD assumes it costs as much as
  the dearest documented single-image operation (EUR 0.10) at the conversion below, so
  estimates err high rather than low.
- ``mystic-2k`` / ``mystic-4k``: EUR 0.10 / 0.32 per image (contract sheet, older price
  list), converted at 1.20 USD per EUR and rounded up to the cent: 0.12 / 0.39. 1.20 is above
  the exchange rate of recent years, again so that estimates are not too low.
- ``mystic-1k``: unpublished; priced as 2K (0.12) rather than guessed cheaper.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import TYPE_CHECKING

from core.errors import ConfigurationError

if TYPE_CHECKING:
    from core.settings import Settings
    from core.themes import Theme

__all__ = [
    "ENDPOINTS",
    "estimate_backfill_cost",
    "estimate_job_cost",
    "mystic_endpoint",
    "needs_confirmation",
    "price_usd",
]

# Endpoint name → Settings field holding its price.
ENDPOINTS: dict[str, str] = {
    "remove-background": "price_remove_background_usd",
    "mystic-1k": "price_mystic_1k_usd",
    "mystic-2k": "price_mystic_2k_usd",
    "mystic-4k": "price_mystic_4k_usd",
}


def price_usd(settings: Settings, endpoint: str) -> float:
    """The price of one call of ``endpoint`` (a key of :data:`ENDPOINTS`).

    Raises:
        ConfigurationError: ``endpoint`` has no price.
    """
    try:
        field = ENDPOINTS[endpoint]
    except KeyError:
        known = ", ".join(ENDPOINTS)
        raise ConfigurationError(f"no price for {endpoint!r}; priced: {known}") from None
    return float(getattr(settings, field))


def mystic_endpoint(resolution: str) -> str:
    """``"2k"`` → ``"mystic-2k"``."""
    return f"mystic-{resolution.lower()}"


def _theme(settings: Settings, theme: str | Theme) -> Theme:
    from core.themes import resolve_theme

    return resolve_theme(theme, settings.themes_file) if isinstance(theme, str) else theme


def estimate_job_cost(settings: Settings, theme: str | Theme) -> float:
    """What one new image costs with the configured providers and ``theme`` (USD).

    The cutout is paid when ``freepik`` is the first segmenter (a later one only runs when the
    ones before it fail). Backgrounds are paid per variant with a prompt, when the generator
    is ``freepik-mystic`` and the theme allows AI. Local providers cost nothing.

    Args:
        settings: the settings whose providers and prices apply.
        theme: a theme or its name.
    """
    spec = _theme(settings, theme)
    total = 0.0
    chain = settings.segmenter_chain
    if chain and chain[0] == "freepik":
        total += price_usd(settings, "remove-background")
    if settings.backgrounds == "freepik-mystic" and spec.ai_allowed:
        for variant in spec.variants:
            if variant.prompt:
                total += price_usd(settings, mystic_endpoint(variant.resolution))
    return round(total, 6)


def estimate_backfill_cost(
    settings: Settings, theme: str | Theme, images: int | Collection[object]
) -> float:
    """The estimated cost of a backfill of ``images`` (a count or the rows) in ``theme``.

    Images whose job already finished cost nothing again (replays reuse stored work); pass
    only the new ones for a tight estimate, or all of them for an upper bound.
    """
    count = images if isinstance(images, int) else len(images)
    if count < 0:
        raise ValueError(f"image count must not be negative, got {count}")
    return round(estimate_job_cost(settings, theme) * count, 6)


def needs_confirmation(settings: Settings, cost_usd: float) -> bool:
    """True when ``cost_usd`` is above ``PACKSHOT_COST_CONFIRM_USD``."""
    return cost_usd > settings.cost_confirm_usd

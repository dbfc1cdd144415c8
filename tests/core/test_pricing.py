"""core.pricing: the price table from settings and the estimates `packshot backfill` shows."""

from __future__ import annotations

import json

import pytest

from core.errors import ConfigurationError
from core.pricing import (
    ENDPOINTS,
    estimate_backfill_cost,
    estimate_job_cost,
    mystic_endpoint,
    needs_confirmation,
    price_usd,
)
from core.settings import Settings, get_settings
from core.themes import BUILTIN_THEMES


def settings_with(monkeypatch: pytest.MonkeyPatch, **env: str) -> Settings:
    for name, value in env.items():
        monkeypatch.setenv(f"PACKSHOT_{name}", value)
    get_settings.cache_clear()
    return get_settings()


def test_default_prices_and_where_they_come_from() -> None:
    s = get_settings()
    assert {name: price_usd(s, name) for name in ENDPOINTS} == {
        "remove-background": 0.12,
        "mystic-1k": 0.12,
        "mystic-2k": 0.12,  # EUR 0.10 at 1.20 USD/EUR
        "mystic-4k": 0.39,  # EUR 0.32 at 1.20, rounded up to the cent
    }
    assert s.cost_confirm_usd == 5.0


def test_prices_are_settings(monkeypatch) -> None:
    s = settings_with(monkeypatch, PRICE_REMOVE_BACKGROUND_USD="0.05", PRICE_MYSTIC_4K_USD="0.4")
    assert price_usd(s, "remove-background") == 0.05 and price_usd(s, "mystic-4k") == 0.4


def test_an_unpriced_endpoint_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="no price for 'mystic-8k'"):
        price_usd(get_settings(), mystic_endpoint("8K"))


def test_local_providers_cost_nothing() -> None:
    assert estimate_job_cost(get_settings(), "default") == 0.0


@pytest.mark.parametrize(
    ("segmenter", "backgrounds", "theme", "expected"),
    [
        ("freepik", "gradient", "default", 0.12),
        ("freepik,local", "gradient", "default", 0.12),
        ("local,freepik", "gradient", "default", 0.0),  # freepik only runs if local fails
        ("local", "freepik-mystic", "default", 0.24),  # two prompt variants
        ("freepik", "freepik-mystic", "default", 0.36),
        ("freepik", "freepik-mystic", "white", 0.12),  # white is never AI-generated
    ],
)
def test_job_estimate_follows_the_providers(
    monkeypatch, segmenter: str, backgrounds: str, theme: str, expected: float
) -> None:
    s = settings_with(monkeypatch, SEGMENTER=segmenter, BACKGROUNDS=backgrounds)
    assert estimate_job_cost(s, theme) == pytest.approx(expected)
    assert estimate_job_cost(s, BUILTIN_THEMES[theme]) == pytest.approx(expected)


def test_theme_resolution_and_ai_permission_count(monkeypatch, tmp_path) -> None:
    themes = tmp_path / "themes.json"
    variant = {"prompt": "x", "resolution": "4k", "stops": [[0, "#FFFFFF"], [1, "#EEEEEE"]]}
    plain = {"stops": [[0, "#FFFFFF"], [1, "#EEEEEE"]]}
    themes.write_text(
        json.dumps(
            {
                "themes": [
                    {"name": "big", "variants": [variant, variant, plain]},
                    {"name": "banned", "variants": [variant], "ai_allowed": False},
                ]
            }
        )
    )
    s = settings_with(monkeypatch, BACKGROUNDS="freepik-mystic", THEMES_FILE=str(themes))
    assert estimate_job_cost(s, "big") == pytest.approx(0.78)
    assert estimate_job_cost(s, "banned") == 0.0


def test_backfill_estimate_and_confirmation(monkeypatch) -> None:
    s = settings_with(monkeypatch, SEGMENTER="freepik", BACKGROUNDS="freepik-mystic")
    assert estimate_backfill_cost(s, "default", 10) == pytest.approx(3.6)
    assert estimate_backfill_cost(s, "default", ["a", "b"]) == pytest.approx(0.72)
    assert estimate_backfill_cost(s, "default", 0) == 0.0
    with pytest.raises(ValueError, match="negative"):
        estimate_backfill_cost(s, "default", -1)
    assert not needs_confirmation(s, 5.0) and needs_confirmation(s, 5.01)
    cheap = settings_with(monkeypatch, COST_CONFIRM_USD="0")
    assert needs_confirmation(cheap, 0.01) and not needs_confirmation(cheap, 0.0)

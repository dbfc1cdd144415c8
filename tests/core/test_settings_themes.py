"""Settings defaults and validation, themes, URL redaction, manifest keys."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from core import keys
from core.errors import ConfigurationError, InputError
from core.settings import Settings, get_settings
from core.themes import BUILTIN_THEMES, load_themes, resolve_theme
from core.urls import is_public_address, redact_url


def test_embedded_defaults_live_under_home(packshot_env: Path) -> None:
    s = get_settings()
    assert s.database_url == f"sqlite:///{(packshot_env / 'packshot.db').resolve()}"
    assert s.store_url == (packshot_env / "store").resolve().as_uri()
    assert (s.segmenter, s.backgrounds, s.publisher) == ("local", "gradient", "none")


def test_placeholder_secrets_are_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PACKSHOT_WEBHOOK_SECRET", "changeme")
    with pytest.raises(ValidationError, match="placeholder"):
        Settings()


@pytest.mark.parametrize("value", ["", " ", "\t  "])
def test_a_blank_webhook_secret_is_refused_everywhere(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    """Blank was taken as unset: signature checks went off while the operator thought them on."""
    monkeypatch.setenv("PACKSHOT_WEBHOOK_SECRET", value)
    with pytest.raises(ValidationError, match=r"webhook_secret\s+Value error, is blank"):
        Settings()


@pytest.mark.parametrize("secret", ["x", "fifteen-chars-1"])
def test_production_refuses_a_webhook_secret_under_16_characters(
    monkeypatch: pytest.MonkeyPatch, secret: str
) -> None:
    monkeypatch.setenv("PACKSHOT_WEBHOOK_SECRET", secret)
    assert Settings().webhook_secret is not None  # the embedded profile takes it
    monkeypatch.setenv("PACKSHOT_PROFILE", "production")
    with pytest.raises(ValidationError, match="shorter than 16 characters") as caught:
        Settings()
    assert secret not in str(caught.value)  # errors never echo the settings' values
    monkeypatch.setenv("PACKSHOT_WEBHOOK_SECRET", secret.ljust(16, "-"))
    assert Settings().webhook_secret is not None


def test_secrets_are_not_printed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PACKSHOT_FREEPIK_API_KEY", "fpk-real-123456")
    s = Settings()
    assert "fpk-real-123456" not in repr(s) and "fpk-real-123456" not in s.model_dump_json()


def test_env_example_lists_every_setting() -> None:
    example = (Path(__file__).parents[2] / ".env.example").read_text()
    for name, field in Settings.model_fields.items():
        alias = field.validation_alias
        variable = alias if isinstance(alias, str) else f"PACKSHOT_{name.upper()}"
        assert f"# {variable}=" in example, variable


def test_builtin_themes() -> None:
    assert len(BUILTIN_THEMES["default"].variants) == 2
    white = BUILTIN_THEMES["white"]
    assert not white.ai_allowed and white.variants[0].solid_rgb() == (255, 255, 255)
    with pytest.raises(InputError, match=r"unknown theme 'nope'.*default, white"):
        resolve_theme("nope")


def test_themes_file_adds_and_validates(tmp_path: Path) -> None:
    path = tmp_path / "themes.json"
    path.write_text(
        json.dumps(
            {
                "themes": [
                    {
                        "name": "warm",
                        "fill": 0.8,
                        "variants": [
                            {"kind": "gradient", "stops": [[0, "#FFF5E6"], [1, "#E8D5B5"]]}
                        ],
                    }
                ]
            }
        )
    )
    assert resolve_theme("warm", path).fill == 0.8
    path.write_text(
        json.dumps({"themes": [{"name": "bad", "variants": [{"stops": [[0, "red"]]}]}]})
    )
    with pytest.raises(ConfigurationError, match="themes file"):
        load_themes(path)


def test_redaction_and_addresses() -> None:
    assert (
        redact_url("https://user:pw@h.example:8443/a.jpg?sig=abc")
        == "https://h.example:8443/a.jpg?sig=***"
    )
    assert not is_public_address("127.0.0.1") and not is_public_address("fd00::1")
    assert is_public_address("1.1.1.1")


def test_keys_follow_the_design_layout() -> None:
    sha = "f" * 64
    assert keys.original_key("S", sha, "jpg") == f"originals/S/{sha}.jpg"
    assert (
        keys.composite_key("default", "S", sha, 2) == f"composites/default/S/{sha}_1x1_2_master.jpg"
    )
    assert (
        keys.derivative_key("default", "S", sha, 1, "hero", "avif")
        == f"derivatives/default/S/{sha}/1_hero.avif"
    )
    assert keys.manifest_key("S", sha, "white") == f"manifests/S/{sha}-white.json"

"""Source URLs at rest: shown redacted, sealed whole with PACKSHOT_SECRET_KEY, keys rotate."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from pydantic import SecretStr

from core import db as core_db
from core.errors import ConfigurationError
from core.sealed import open_source, seal_source

SECRET_URL = "https://shop:hunter2@cdn.example/p/1.jpg?X-Amz-Signature=abc123&w=800"
KEY = SecretStr("a-long-random-key-for-the-tests-0001")
OLD_KEY = SecretStr("an-older-key-that-was-rotated-out-02")


def test_a_url_without_secrets_is_stored_as_it_is() -> None:
    sealed = seal_source("https://cdn.example/p/1.jpg", KEY)
    assert (sealed.shown, sealed.secret) == ("https://cdn.example/p/1.jpg", None)
    assert open_source(sealed.shown, sealed.secret, KEY) == "https://cdn.example/p/1.jpg"


def test_credentials_and_query_values_are_encrypted_and_never_shown() -> None:
    sealed = seal_source(SECRET_URL, KEY)
    assert sealed.shown == "https://cdn.example/p/1.jpg?X-Amz-Signature=***&w=***"
    assert sealed.secret is not None and sealed.secret.startswith("fernet:")
    for secret_part in ("hunter2", "abc123", "shop:"):
        assert secret_part not in sealed.secret
    assert open_source(sealed.shown, sealed.secret, KEY) == SECRET_URL
    # Fernet draws a fresh IV: the same URL never seals to the same token twice.
    assert seal_source(SECRET_URL, KEY).secret != sealed.secret


def test_without_a_key_the_whole_url_is_kept_beside_the_shown_one() -> None:
    sealed = seal_source(SECRET_URL, None)
    assert sealed.secret == "plain:" + SECRET_URL
    assert open_source(sealed.shown, sealed.secret, None) == SECRET_URL


def test_a_rotated_key_still_opens_old_rows_and_new_rows_use_the_first_key() -> None:
    old = seal_source(SECRET_URL, OLD_KEY)
    rotated = SecretStr(f"{KEY.get_secret_value()},{OLD_KEY.get_secret_value()}")
    assert open_source(old.shown, old.secret, rotated) == SECRET_URL
    new = seal_source(SECRET_URL, rotated)
    assert open_source(new.shown, new.secret, KEY) == SECRET_URL  # sealed with the first


def test_a_wrong_or_missing_key_is_a_clear_error_that_reveals_nothing() -> None:
    sealed = seal_source(SECRET_URL, OLD_KEY)
    with pytest.raises(ConfigurationError, match="does not open") as wrong:
        open_source(sealed.shown, sealed.secret, KEY)
    with pytest.raises(ConfigurationError, match="PACKSHOT_SECRET_KEY is not set") as missing:
        open_source(sealed.shown, sealed.secret, None)
    for error in (wrong.value, missing.value):
        assert "hunter2" not in str(error) and "abc123" not in str(error)


def test_a_tampered_token_is_refused() -> None:
    sealed = seal_source(SECRET_URL, KEY)
    assert sealed.secret is not None
    tampered = sealed.secret[:-6] + ("A" if sealed.secret[-6] != "A" else "B") + sealed.secret[-5:]
    with pytest.raises(ConfigurationError):
        open_source(sealed.shown, tampered, KEY)


def test_the_migration_seals_urls_stored_before_it(
    tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from core import settings as settings_module

    url = f"sqlite:///{tmp_path / 'old.db'}"
    config = Config()
    config.set_main_option("script_location", str(core_db._MIGRATIONS))
    engine = core_db.get_engine(url)
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "0005")
        for n, source in enumerate((SECRET_URL, "https://cdn.example/plain.jpg")):
            conn.execute(
                sa.text(
                    "INSERT INTO job (id, sku, sha256, theme, source_url, status, cost_usd, "
                    "created_at, updated_at) VALUES (:id, 'S', :sha, 'default', :url, 'DONE', "
                    "0, '2026-01-01', '2026-01-01')"
                ),
                {"id": f"{n:032x}", "sha": f"{n}" * 64, "url": source},
            )
    monkeypatch.setenv("PACKSHOT_SECRET_KEY", KEY.get_secret_value())
    settings_module.get_settings.cache_clear()
    assert core_db.upgrade_schema(url) == "0007"
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT source_url, source_secret FROM job ORDER BY id")).all()
    (shown, secret), plain = rows
    assert shown == "https://cdn.example/p/1.jpg?X-Amz-Signature=***&w=***"
    assert secret.startswith("fernet:") and open_source(shown, secret, KEY) == SECRET_URL
    assert plain == ("https://cdn.example/plain.jpg", None)

"""Prefect's clients of a plain-HTTP API on loopback build their (unused) TLS context from one
certificate; every other API keeps Prefect's verification as it is."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
from prefect.settings import get_current_settings

from core.settings import Settings
from deployments.prefect_env import PrefectApi
from deployments.prefect_tls import unused_tls_ca_file
from deployments.stack import stack_env


@pytest.mark.parametrize(
    "api_url", ["http://127.0.0.1:4200/api", "http://localhost:4200/api", "http://[::1]:4200/api"]
)
def test_a_loopback_http_api_gets_a_ca_file_of_one_certificate(
    tmp_path: Path, api_url: str
) -> None:
    found = unused_tls_ca_file(Settings(home=tmp_path), api_url)
    assert found is not None
    context = ssl.create_default_context(cafile=str(found))
    assert context.cert_store_stats()["x509_ca"] == 1


@pytest.mark.parametrize(
    "api_url",
    ["https://127.0.0.1:4200/api", "http://prefect.internal:4200/api", "https://api.example/api"],
)
def test_any_other_api_keeps_prefects_verification(tmp_path: Path, api_url: str) -> None:
    assert unused_tls_ca_file(Settings(home=tmp_path), api_url) is None


def test_the_file_is_written_once(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    first = unused_tls_ca_file(settings, "http://127.0.0.1:4200/api")
    assert first is not None
    first.write_text(first.read_text() + "\n")  # a change a rewrite would undo
    again = unused_tls_ca_file(settings, "http://127.0.0.1:4200/api")
    assert again == first
    assert first.read_text().endswith("\n\n")


@pytest.mark.parametrize(
    ("api_url", "uses_it"), [("http://127.0.0.1:4200/api", True), ("https://p.example/api", False)]
)
def test_a_stacks_children_and_a_commands_flow_use_it_for_a_loopback_http_api(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, api_url: str, uses_it: bool
) -> None:
    monkeypatch.delenv("PREFECT_API_SSL_CERT_FILE", raising=False)
    settings = Settings(home=tmp_path)
    expected = str(tmp_path / "prefect" / "loopback-http-ca.pem") if uses_it else None
    assert stack_env(settings, api_url).get("PREFECT_API_SSL_CERT_FILE") == expected

    api = PrefectApi(url=api_url, kind="configured", tls_ca=unused_tls_ca_file(settings, api_url))
    before = get_current_settings().api.ssl_cert_file
    with api.flow_here():
        assert get_current_settings().api.ssl_cert_file == (expected or before)


def test_an_operators_ca_file_wins_in_the_stack(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PREFECT_API_SSL_CERT_FILE", "/etc/operator-ca.pem")
    env = stack_env(Settings(home=tmp_path), "http://127.0.0.1:4200/api")
    assert env["PREFECT_API_SSL_CERT_FILE"] == "/etc/operator-ca.pem"

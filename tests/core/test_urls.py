"""URL validation and redaction: what the webhook refuses, and redaction that never raises."""

from __future__ import annotations

import pytest

from core.urls import redact_url, redact_urls, url_problem

VALID = [
    "https://cdn.example/a.jpg",
    "http://cdn.example:8080/a.jpg?token=x#frag",
    "https://user:pw@cdn.example/a.jpg",
    "http://[2001:db8::1]:8443/a.jpg",
    "http://93.184.216.34/a.jpg",
    "https://bücher.example/a.jpg",
    "http://img_1.cdn.example./a.jpg",
]

INVALID = [
    ("http://cdn.example:99999/a.jpg", "invalid port"),
    ("http://cdn.example:0/a.jpg", "invalid port"),
    ("http://cdn.example:-1/a.jpg", "invalid port"),
    ("http://cdn.example:http/a.jpg", "invalid port"),
    ("http://[::1/a.jpg", "not a valid URL"),
    ("http://[zz::1]/a.jpg", "not a valid URL"),
    ("http://300.1.1.1/a.jpg", "not a valid URL"),
    ("http://cdn..example/a.jpg", "invalid host"),
    ("http://-cdn.example/a.jpg", "invalid host"),
    ("http://" + "a" * 64 + ".example/a.jpg", "invalid host"),
    ("ftp://cdn.example/a.jpg", "http(s)"),
    ("//cdn.example/a.jpg", "http(s)"),
    ("https:///a.jpg", "http(s)"),
    ("https://cdn.example/a b.jpg", "spaces"),
    ("https://cdn.example/a\x00.jpg", "control"),
    ("https://cdn.example/" + "a" * 5000, "at most 4096"),
]


@pytest.mark.parametrize("url", VALID)
def test_valid_urls_have_no_problem(url: str) -> None:
    assert url_problem(url) is None


@pytest.mark.parametrize(("url", "problem"), INVALID)
def test_invalid_urls_name_their_problem(url: str, problem: str) -> None:
    found = url_problem(url)
    assert found is not None and problem in found


@pytest.mark.parametrize("url", VALID + [url for url, _ in INVALID] + ["", "::", "http://@", "%"])
def test_redaction_never_raises_and_keeps_no_credentials_or_query_values(url: str) -> None:
    shown = redact_url(url)
    assert "pw" not in shown and "token=x" not in shown
    assert "pw" not in redact_urls(f"failed: {url} (again)")


def test_redaction_of_an_invalid_port_shows_it() -> None:
    url = "http://u:pw@cdn.example:99999/a.jpg?token=s3cr3t"
    assert redact_url(url) == "http://cdn.example:99999/a.jpg?token=***"
    assert redact_urls(f"GET {url} failed") == "GET http://cdn.example:99999/a.jpg?token=*** failed"

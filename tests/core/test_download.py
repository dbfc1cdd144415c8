"""Source download: schemes, private addresses, redirects, size cap, HTTP errors (respx)."""

from __future__ import annotations

import hashlib

import httpx
import pytest
import respx

from core.download import DownloadPolicy, download_source
from core.errors import InputError, ProviderUnavailable

URL = "https://cdn.example.com/media/a.jpg"
BODY = b"\xff\xd8\xff" + b"x" * 1000


def public(host: str, port: int) -> list[str]:
    return ["93.184.216.34"]


POLICY = DownloadPolicy(resolver=public)


@respx.mock
def test_downloads_and_hashes() -> None:
    respx.get(URL).mock(return_value=httpx.Response(200, content=BODY))
    with httpx.Client() as client:
        got = download_source(client, URL, POLICY)
    assert got.data == BODY and got.sha256 == hashlib.sha256(BODY).hexdigest()


@pytest.mark.parametrize("url", ["ftp://x/a.jpg", "file:///etc/passwd", "data:image/png;base64,AA"])
def test_non_http_schemes_are_refused(url: str) -> None:
    with httpx.Client() as client, pytest.raises(InputError, match="http"):
        download_source(client, url, POLICY)


@pytest.mark.parametrize(
    "addresses",
    [["127.0.0.1"], ["10.1.2.3"], ["169.254.169.254"], ["::1"], ["93.184.216.34", "192.168.0.5"]],
)
def test_private_addresses_are_refused(addresses: list[str]) -> None:
    policy = DownloadPolicy(resolver=lambda host, port: addresses)
    with httpx.Client() as client, pytest.raises(InputError, match="private"):
        download_source(client, URL, policy)


def test_literal_loopback_refused_with_the_real_resolver() -> None:
    with (
        httpx.Client() as client,
        pytest.raises(InputError, match="PACKSHOT_ALLOW_PRIVATE_SOURCES"),
    ):
        download_source(client, "http://127.0.0.1:9/a.jpg", DownloadPolicy())


@respx.mock
def test_redirect_to_private_address_is_checked_again() -> None:
    respx.get(URL).mock(
        return_value=httpx.Response(302, headers={"location": "http://internal.example/x"})
    )

    def resolver(host: str, port: int) -> list[str]:
        return ["10.0.0.7"] if host == "internal.example" else ["93.184.216.34"]

    with httpx.Client() as client, pytest.raises(InputError, match="private"):
        download_source(client, URL, DownloadPolicy(resolver=resolver))


@respx.mock
def test_at_most_three_redirects() -> None:
    for n in range(5):
        respx.get(f"https://cdn.example.com/{n}").mock(
            return_value=httpx.Response(301, headers={"location": f"/{n + 1}"})
        )
    respx.get("https://cdn.example.com/3").mock(return_value=httpx.Response(200, content=BODY))
    with httpx.Client() as client:
        assert download_source(client, "https://cdn.example.com/0", POLICY).data == BODY
        with pytest.raises(InputError, match="redirects"):
            download_source(
                client,
                "https://cdn.example.com/0",
                DownloadPolicy(resolver=public, max_redirects=2),
            )


@respx.mock
def test_size_cap_by_header_and_while_streaming() -> None:
    big = b"x" * 5000
    respx.get(URL).mock(return_value=httpx.Response(200, content=big))
    respx.get("https://cdn.example.com/chunked").mock(
        return_value=httpx.Response(200, stream=httpx.ByteStream(big))  # no content-length
    )
    small = DownloadPolicy(resolver=public, max_bytes=1000)
    with httpx.Client() as client:
        with pytest.raises(InputError, match="limit"):
            download_source(client, URL, small)
        with pytest.raises(InputError, match="limit"):
            download_source(client, "https://cdn.example.com/chunked", small)


@respx.mock
@pytest.mark.parametrize(
    ("status", "error"),
    [
        (404, InputError),
        (403, InputError),
        (500, ProviderUnavailable),
        (503, ProviderUnavailable),
        (429, ProviderUnavailable),
    ],
)
def test_http_errors_map_to_the_error_tree(status: int, error: type[Exception]) -> None:
    respx.get(URL).mock(return_value=httpx.Response(status))
    with httpx.Client() as client, pytest.raises(error, match=str(status)):
        download_source(client, URL, POLICY)


@respx.mock
def test_timeouts_are_transient_and_urls_redacted() -> None:
    signed = URL + "?X-Amz-Signature=topsecret"
    respx.get(signed).mock(side_effect=httpx.ReadTimeout("slow"))
    with httpx.Client() as client, pytest.raises(ProviderUnavailable) as caught:
        download_source(client, signed, POLICY)
    assert "topsecret" not in str(caught.value) and caught.value.retryable


@respx.mock
def test_empty_body_is_bad_input() -> None:
    respx.get(URL).mock(return_value=httpx.Response(200, content=b""))
    with httpx.Client() as client, pytest.raises(InputError, match="empty"):
        download_source(client, URL, POLICY)

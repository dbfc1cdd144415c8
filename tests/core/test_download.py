"""Source download: schemes, private addresses, redirects, size cap, HTTP errors (respx), and
over real loopback servers: DNS rebinding, redirects to internal hosts, dripping sources."""

from __future__ import annotations

import hashlib
import ipaddress
import socket
from typing import Any

import httpx
import pytest
import respx

from core.download import DownloadPolicy, download_source
from core.errors import InputError, ProviderUnavailable
from core.urls import is_public_address
from tests.helpers.http_server import Reply, Script, serve

URL = "https://cdn.example.com/media/a.jpg"
BODY = b"\xff\xd8\xff" + b"x" * 1000


def public(host: str, port: int) -> list[str]:
    return ["93.184.216.34"]


POLICY = DownloadPolicy(resolver=public)


@respx.mock
def test_downloads_and_hashes() -> None:
    respx.get(URL).mock(return_value=httpx.Response(200, content=BODY))
    got = download_source(URL, POLICY)
    assert got.data == BODY and got.sha256 == hashlib.sha256(BODY).hexdigest()


@pytest.mark.parametrize("url", ["ftp://x/a.jpg", "file:///etc/passwd", "data:image/png;base64,AA"])
def test_non_http_schemes_are_refused(url: str) -> None:
    with pytest.raises(InputError, match="http"):
        download_source(url, POLICY)


@pytest.mark.parametrize(
    "addresses",
    [["127.0.0.1"], ["10.1.2.3"], ["169.254.169.254"], ["::1"], ["93.184.216.34", "192.168.0.5"]],
)
def test_private_addresses_are_refused(addresses: list[str]) -> None:
    policy = DownloadPolicy(resolver=lambda host, port: addresses)
    with pytest.raises(InputError, match="private"):
        download_source(URL, policy)


def test_literal_loopback_refused_with_the_real_resolver() -> None:
    with pytest.raises(InputError, match="PACKSHOT_ALLOW_PRIVATE_SOURCES"):
        download_source("http://127.0.0.1:9/a.jpg", DownloadPolicy())


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://cdn.example.com:99999/a.jpg", "invalid port"),
        ("http://cdn.example.com:0/a.jpg", "invalid port"),
        ("http://cdn.example.com:x/a.jpg", "invalid port"),
        ("http://cdn..example.com/a.jpg", "invalid host"),
        ("http://[::1/a.jpg", "not a valid URL"),
    ],
)
def test_malformed_urls_are_bad_input_before_any_lookup(url: str, problem: str) -> None:
    def resolver(host: str, port: int) -> list[str]:
        raise AssertionError("a malformed URL must not be resolved")

    with pytest.raises(InputError, match=problem) as caught:
        download_source(url, DownloadPolicy(resolver=resolver))
    assert not caught.value.retryable


@respx.mock
def test_at_most_three_redirects() -> None:
    for n in range(5):
        respx.get(f"https://cdn.example.com/{n}").mock(
            return_value=httpx.Response(301, headers={"location": f"/{n + 1}"})
        )
    respx.get("https://cdn.example.com/3").mock(return_value=httpx.Response(200, content=BODY))
    assert download_source("https://cdn.example.com/0", POLICY).data == BODY
    with pytest.raises(InputError, match="redirects"):
        download_source(
            "https://cdn.example.com/0", DownloadPolicy(resolver=public, max_redirects=2)
        )


@respx.mock
def test_size_cap_by_header_and_while_streaming() -> None:
    big = b"x" * 5000
    respx.get(URL).mock(return_value=httpx.Response(200, content=big))
    respx.get("https://cdn.example.com/chunked").mock(
        return_value=httpx.Response(200, stream=httpx.ByteStream(big))  # no content-length
    )
    small = DownloadPolicy(resolver=public, max_bytes=1000)
    with pytest.raises(InputError, match="limit"):
        download_source(URL, small)
    with pytest.raises(InputError, match="limit"):
        download_source("https://cdn.example.com/chunked", small)


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
    with pytest.raises(error, match=str(status)):
        download_source(URL, POLICY)


@respx.mock
def test_timeouts_are_transient_and_urls_redacted() -> None:
    signed = URL + "?X-Amz-Signature=topsecret"
    respx.get(signed).mock(side_effect=httpx.ReadTimeout("slow"))
    with pytest.raises(ProviderUnavailable) as caught:
        download_source(signed, POLICY)
    assert "topsecret" not in str(caught.value) and caught.value.retryable


@respx.mock
def test_empty_body_is_bad_input() -> None:
    respx.get(URL).mock(return_value=httpx.Response(200, content=b""))
    with pytest.raises(InputError, match="empty"):
        download_source(URL, POLICY)


# --- real connections: name resolution, rebinding, redirects ----------------------------------

_REAL_GETADDRINFO = socket.getaddrinfo


class FakeDns:
    """``socket.getaddrinfo`` of a test: scripted names, and "the internet" on loopback.

    A name in ``names`` gets its answers in turn (the last one repeats). A public address
    literal is reached at ``public_port`` on 127.0.0.1, the test's stand-in for that host.
    Loopback literals resolve as usual; anything else fails, so nothing leaves this machine.
    """

    def __init__(self, names: dict[str, list[list[str]]], public_port: int) -> None:
        self.names = names
        self.public_port = public_port
        self.calls: list[str] = []

    def __call__(self, host: Any, port: Any, *args: Any, **kwargs: Any) -> list[Any]:
        self.calls.append(str(host))
        answers = self.names.get(str(host))
        if answers:
            addresses = answers.pop(0) if len(answers) > 1 else answers[0]
            return [self._info(address, int(port)) for address in addresses]
        try:
            ip = ipaddress.ip_address(str(host))
        except ValueError:
            raise socket.gaierror(socket.EAI_NONAME, f"{host}: no such name in this test") from None
        if ip.is_loopback:
            return _REAL_GETADDRINFO(host, port, *args, **kwargs)
        if is_public_address(str(ip)):
            return [self._info("127.0.0.1", self.public_port)]
        raise socket.gaierror(socket.EAI_NONAME, f"{host}: not reachable from tests")

    @staticmethod
    def _info(address: str, port: int) -> tuple[Any, ...]:
        if ":" in address:
            return (socket.AF_INET6, socket.SOCK_STREAM, 6, "", (address, port, 0, 0))
        return (socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))


def _port(base_url: str) -> int:
    return int(base_url.rsplit(":", 1)[1])


def test_dns_rebinding_never_reaches_the_private_service(monkeypatch: pytest.MonkeyPatch) -> None:
    """The name answers a public address when checked and loopback when asked again: the
    connection goes to the checked address, and the loopback service gets no request."""
    internal, origin = Script(), Script()
    internal.add("/a.jpg", Reply(200, b"internal secrets"))
    origin.add("/a.jpg", Reply(200, BODY))
    with serve(internal) as internal_url, serve(origin) as origin_url:
        dns = FakeDns({"rebind.test": [["93.184.216.34"], ["127.0.0.1"]]}, _port(origin_url))
        monkeypatch.setattr(socket, "getaddrinfo", dns)
        got = download_source(f"http://rebind.test:{_port(internal_url)}/a.jpg", DownloadPolicy())
    assert got.data == BODY
    assert internal.hits == {} and origin.hits == {"/a.jpg": 1}
    # One lookup of the name; the connection was made to the address that lookup returned.
    assert dns.calls == ["rebind.test", "93.184.216.34"]


def test_redirect_to_an_internal_host_is_refused_before_connecting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    internal, origin = Script(), Script()
    internal.add("/admin", Reply(200, b"internal secrets"))
    with serve(internal) as internal_url, serve(origin) as origin_url:
        target = f"http://internal.test:{_port(internal_url)}/admin"
        origin.add("/a.jpg", Reply(302, headers={"Location": target}))
        dns = FakeDns(
            {"cdn.test": [["93.184.216.34"]], "internal.test": [["127.0.0.1"]]},
            _port(origin_url),
        )
        monkeypatch.setattr(socket, "getaddrinfo", dns)
        with pytest.raises(InputError, match=r"internal\.test resolves to a private"):
            download_source(f"http://cdn.test:{_port(origin_url)}/a.jpg", DownloadPolicy())
    assert origin.hits == {"/a.jpg": 1} and internal.hits == {}


# --- slow sources: the whole-download deadline and the minimum rate ---------------------------


def _slow(reply: Reply, policy: DownloadPolicy) -> InputError:
    script = Script()
    script.add("/slow.jpg", reply)
    with serve(script) as base, pytest.raises(InputError) as caught:
        download_source(f"{base}/slow.jpg", policy)
    assert not caught.value.retryable  # fails once: a retry would be as slow
    return caught.value


def test_a_dripping_source_fails_below_the_minimum_rate() -> None:
    policy = DownloadPolicy(allow_private=True, min_rate_bps=20_000, rate_window_s=0.3)
    error = _slow(Reply(200, b"x" * 500, drip=0.02), policy)
    assert str(error).startswith("source too slow: ")
    assert "B/s below the minimum 20.0 KB/s" in str(error)


def test_a_source_that_stops_sending_fails_after_one_rate_window() -> None:
    policy = DownloadPolicy(allow_private=True, min_rate_bps=20_000, rate_window_s=0.3)
    error = _slow(Reply(200, b"xy", drip=60), policy)
    assert "nothing received for 0.3 s, below the minimum 20.0 KB/s" in str(error)


def test_the_deadline_bounds_the_whole_download_not_each_read() -> None:
    """Without a minimum rate, bytes every 20 ms never trip a 30 s read timeout: the deadline
    ends the download all the same."""
    policy = DownloadPolicy(allow_private=True, min_rate_bps=0, deadline_s=0.5)
    error = _slow(Reply(200, b"x" * 500, drip=0.02), policy)
    assert str(error).startswith("download exceeded 0.5 s (PACKSHOT_DOWNLOAD_DEADLINE_S)")


def test_the_deadline_interrupts_a_read_that_waits() -> None:
    """One byte, then silence: the pending read ends at the deadline, not after the read
    timeout (30 s), which would have been a retryable "timed out"."""
    policy = DownloadPolicy(allow_private=True, min_rate_bps=0, deadline_s=0.5)
    error = _slow(Reply(200, b"xy", drip=60), policy)
    assert str(error).startswith("download exceeded 0.5 s")


def test_a_fast_source_passes_the_pace_checks() -> None:
    script = Script()
    script.add("/a.jpg", Reply(200, BODY))
    policy = DownloadPolicy(allow_private=True, rate_window_s=0.001, deadline_s=30)
    with serve(script) as base:
        assert download_source(f"{base}/a.jpg", policy).data == BODY

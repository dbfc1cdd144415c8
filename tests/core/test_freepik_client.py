"""core.clients.freepik: requests as the contract sheet asks, answers mapped into the error tree."""

from __future__ import annotations

import pickle
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from urllib.parse import parse_qs

import httpx
import pytest
import respx
from pydantic import SecretStr

from core.clients.freepik import (
    FreepikClient,
    invalid_params,
    new_http_client,
    parse_retry_after,
    request_gate,
)
from core.errors import (
    ConfigurationError,
    ProviderRateLimited,
    ProviderRejected,
    ProviderUnavailable,
    is_retryable_error,
)
from tests.helpers.freepik import BASE, IMG_URL, KEY, RESULT_PATH, TID, mystic, remove_background_ok

SOURCE = "https://bucket.s3.amazonaws.com/originals/SKU/abc.jpg?X-Amz-Signature=s3cr3t"
ENDPOINT = f"{BASE}/v1/ai/beta/remove-background"


class Sleeps(list[float]):
    """Records the waits instead of sleeping."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


def make_client(sleeps: Sleeps, base: str = BASE, header: str = "x-freepik-api-key", **options):
    http = new_http_client(base, connect_timeout_s=1, read_timeout_s=2)
    return FreepikClient(http, api_key=SecretStr(KEY), auth_header=header, sleep=sleeps, **options)


@pytest.fixture
def client(sleeps: Sleeps) -> FreepikClient:
    return make_client(sleeps, max_retries=2, backoff_s=1.0, max_retry_after_s=30.0)


@respx.mock
def test_remove_background_sends_one_form_field_with_the_key(client: FreepikClient) -> None:
    route = respx.post(ENDPOINT).mock(return_value=remove_background_ok())
    answer = client.remove_background(SOURCE)
    request = route.calls.last.request
    assert request.method == "POST"
    assert request.headers["x-freepik-api-key"] == KEY
    assert "authorization" not in request.headers
    assert request.headers["content-type"].startswith("application/x-www-form-urlencoded")
    assert parse_qs(request.content.decode()) == {"image_url": [SOURCE]}
    assert answer.high_resolution == f"{BASE}{RESULT_PATH}" and answer.attempts == 1
    assert answer.preview and answer.preview.endswith("preview.png")


@respx.mock
def test_the_renamed_host_and_its_header_are_settings(sleeps: Sleeps) -> None:
    base = "https://api.magnific.com"
    route = respx.post(f"{base}/v1/ai/beta/remove-background").mock(
        return_value=remove_background_ok(base)
    )
    make_client(sleeps, base=base, header="x-magnific-api-key").remove_background(SOURCE)
    headers = route.calls.last.request.headers
    assert headers["x-magnific-api-key"] == KEY and "x-freepik-api-key" not in headers


@respx.mock
def test_429_with_retry_after_waits_that_long(client: FreepikClient, sleeps: Sleeps) -> None:
    route = respx.post(ENDPOINT).mock(
        side_effect=[httpx.Response(429, headers={"retry-after": "7"}), remove_background_ok()]
    )
    assert client.remove_background(SOURCE).attempts == 2
    assert route.call_count == 2 and sleeps == [7.0]


@respx.mock
def test_429_without_retry_after_backs_off_with_jitter(
    client: FreepikClient, sleeps: Sleeps
) -> None:
    respx.post(ENDPOINT).mock(
        side_effect=[httpx.Response(429), httpx.Response(429), remove_background_ok()]
    )
    assert client.remove_background(SOURCE).attempts == 3
    assert len(sleeps) == 2
    assert 0.5 <= sleeps[0] <= 1.5 and 1.0 <= sleeps[1] <= 3.0  # 1 s, then 2 s, ±50 %


@respx.mock
def test_429_throughout_is_rate_limited_after_the_retries(client: FreepikClient) -> None:
    route = respx.post(ENDPOINT).mock(
        return_value=httpx.Response(429, headers={"retry-after": "3"})
    )
    with pytest.raises(ProviderRateLimited) as caught:
        client.remove_background(SOURCE)
    assert route.call_count == 3  # one call, two retries
    assert caught.value.retry_after == 3.0 and is_retryable_error(caught.value)
    again = pickle.loads(pickle.dumps(caught.value))
    assert (type(again), again.retry_after, str(again)) == (
        ProviderRateLimited,
        3.0,
        str(caught.value),
    )


@respx.mock
def test_a_long_retry_after_is_not_waited_in_the_client(
    client: FreepikClient, sleeps: Sleeps
) -> None:
    route = respx.post(ENDPOINT).mock(
        return_value=httpx.Response(429, headers={"retry-after": "120"})
    )
    with pytest.raises(ProviderRateLimited) as caught:
        client.remove_background(SOURCE)
    assert route.call_count == 1 and sleeps == [] and caught.value.retry_after == 120.0


@respx.mock
def test_5xx_then_success(client: FreepikClient) -> None:
    route = respx.post(ENDPOINT).mock(
        side_effect=[
            httpx.Response(500, json={"message": "Internal Server Error"}),
            httpx.Response(503, json={"message": "Service Unavailable. Please try again later."}),
            remove_background_ok(),
        ]
    )
    assert client.remove_background(SOURCE).attempts == 3 and route.call_count == 3


@respx.mock
def test_5xx_throughout_is_unavailable(client: FreepikClient) -> None:
    unavailable = {"message": "Service Unavailable. Please try again later."}
    route = respx.post(ENDPOINT).mock(return_value=httpx.Response(503, json=unavailable))
    with pytest.raises(ProviderUnavailable, match=r"HTTP 503.*Service Unavailable"):
        client.remove_background(SOURCE)
    assert route.call_count == 3


@respx.mock
@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (401, {"message": "Invalid API key"}, r"Freepik rejected the API key \(HTTP 401\)"),
        (401, {"message": "Missing API key"}, r"Freepik rejected the API key \(HTTP 401\)"),
        (402, {}, r"no credits left.*HTTP 402"),
        (403, {}, r"plan \(HTTP 403\)"),
    ],
)
def test_key_credit_and_plan_refusals_are_configuration_errors(
    client: FreepikClient, status: int, body: dict, expected: str
) -> None:
    route = respx.post(ENDPOINT).mock(return_value=httpx.Response(status, json=body))
    with pytest.raises(ConfigurationError, match=expected) as caught:
        client.remove_background(SOURCE)
    assert route.call_count == 1 and not is_retryable_error(caught.value)
    assert KEY not in str(caught.value) and KEY not in repr(caught.value)


@respx.mock
@pytest.mark.parametrize(
    ("status", "entry"),
    [
        (400, {"name": "image_url", "reason": "Either path or url is required"}),
        (422, {"field": "image_url", "reason": "must be a public URL"}),
    ],
)
def test_invalid_params_in_both_shapes_are_rejected(
    client: FreepikClient, status: int, entry: dict
) -> None:
    body = {"message": "Your request parameters didn't validate.", "invalid_params": [entry]}
    route = respx.post(ENDPOINT).mock(return_value=httpx.Response(status, json=body))
    with pytest.raises(ProviderRejected) as caught:
        client.remove_background(SOURCE)
    message = str(caught.value)
    assert f"HTTP {status}" in message and "didn't validate" in message
    assert f"invalid: image_url ({entry['reason']})" in message
    assert route.call_count == 1 and not is_retryable_error(caught.value)


def test_invalid_params_reads_name_field_and_odd_entries() -> None:
    body = {"invalid_params": [{"name": "a", "reason": "r"}, {"field": "b"}, "junk", {}]}
    assert invalid_params(body) == ["a (r)", "b", "?"]
    assert invalid_params({"message": "x"}) == [] and invalid_params(None) == []


@respx.mock
def test_a_body_that_is_not_json_is_unavailable(client: FreepikClient) -> None:
    html = "<html><body>502 Bad Gateway</body></html>"
    respx.post(ENDPOINT).mock(return_value=httpx.Response(200, text=html))
    with pytest.raises(ProviderUnavailable, match="not JSON"):
        client.remove_background(SOURCE)


@respx.mock
@pytest.mark.parametrize("body", [[], {"preview": "x"}, {"high_resolution": "not a url"}])
def test_json_without_the_documented_fields_is_rejected(client: FreepikClient, body) -> None:
    respx.post(ENDPOINT).mock(return_value=httpx.Response(200, json=body))
    with pytest.raises(ProviderRejected):
        client.remove_background(SOURCE)


@respx.mock
def test_connect_timeouts_are_retried(client: FreepikClient) -> None:
    route = respx.post(ENDPOINT).mock(
        side_effect=[httpx.ConnectTimeout("slow"), remove_background_ok()]
    )
    assert client.remove_background(SOURCE).attempts == 2 and route.call_count == 2


@respx.mock
def test_a_post_whose_answer_timed_out_is_not_repeated_here(client: FreepikClient) -> None:
    route = respx.post(ENDPOINT).mock(side_effect=httpx.ReadTimeout("slow"))
    with pytest.raises(ProviderUnavailable, match="did not answer in time") as caught:
        client.remove_background(SOURCE)
    assert route.call_count == 1 and is_retryable_error(caught.value)


@respx.mock
def test_a_poll_that_timed_out_is_repeated(client: FreepikClient) -> None:
    route = respx.get(f"{BASE}/v1/ai/mystic/{TID}").mock(
        side_effect=[httpx.ReadTimeout("slow"), mystic("IN_PROGRESS")]
    )
    assert client.mystic_task(TID).status == "IN_PROGRESS" and route.call_count == 2


@respx.mock
def test_downloads_carry_no_key_and_follow_redirects(client: FreepikClient) -> None:
    first = "https://cdn.freepik.example/r/abc.png?token=t0k3n"
    respx.get(first).mock(return_value=httpx.Response(302, headers={"location": IMG_URL}))
    route = respx.get(IMG_URL).mock(
        return_value=httpx.Response(200, content=b"\x89PNG\r\n\x1a\nxx")
    )
    result = client.download(first, max_bytes=1000)
    assert result.data.startswith(b"\x89PNG") and result.attempts == 1
    assert "x-freepik-api-key" not in route.calls.last.request.headers


@respx.mock
@pytest.mark.parametrize("status", [403, 404])
def test_an_expired_result_url_is_unavailable_without_leaking_it(
    client: FreepikClient, status: int
) -> None:
    url = f"{BASE}{RESULT_PATH}?signature=abcdef"
    route = respx.get(url).mock(return_value=httpx.Response(status))
    with pytest.raises(ProviderUnavailable, match=rf"HTTP {status}.*expired") as caught:
        client.download(url, max_bytes=1000)
    assert route.call_count == 1 and "abcdef" not in str(caught.value)


@respx.mock
def test_a_download_larger_than_the_cap_is_rejected(client: FreepikClient) -> None:
    respx.get(IMG_URL).mock(return_value=httpx.Response(200, content=b"x" * 2000))
    with pytest.raises(ProviderRejected, match="2,000 bytes"):
        client.download(IMG_URL, max_bytes=1000)


@respx.mock
def test_mystic_submit_is_json_and_both_answer_shapes_are_read(client: FreepikClient) -> None:
    route = respx.post(f"{BASE}/v1/ai/mystic").mock(return_value=mystic("CREATED"))
    created = client.create_mystic_task({"prompt": "studio", "resolution": "2k"})
    request = route.calls.last.request
    assert request.headers["content-type"] == "application/json"
    assert request.headers["x-freepik-api-key"] == KEY
    assert created.task_id == TID and created.status == "CREATED" and created.generated == ()
    bare = {"task_id": TID, "task_status": "COMPLETED", "generated": [IMG_URL]}
    respx.get(f"{BASE}/v1/ai/mystic/{TID}").mock(return_value=httpx.Response(200, json=bare))
    done = client.mystic_task(TID)
    assert (done.status, done.generated) == ("COMPLETED", (IMG_URL,))


@respx.mock
def test_an_unknown_task_is_rejected(client: FreepikClient) -> None:
    respx.get(f"{BASE}/v1/ai/mystic/{TID}").mock(
        return_value=httpx.Response(404, json={"message": "task not found"})
    )
    with pytest.raises(ProviderRejected, match=r"HTTP 404.*task not found"):
        client.mystic_task(TID)


@respx.mock
def test_an_error_body_quoting_the_key_is_scrubbed(client: FreepikClient) -> None:
    respx.post(ENDPOINT).mock(
        return_value=httpx.Response(400, json={"message": f"bad key {KEY} for image_url"})
    )
    with pytest.raises(ProviderRejected) as caught:
        client.remove_background(SOURCE)
    assert KEY not in str(caught.value) and "***" in str(caught.value)
    assert KEY not in repr(client)


@respx.mock
def test_every_request_passes_the_gate(client: FreepikClient) -> None:
    respx.post(ENDPOINT).mock(side_effect=[httpx.Response(503), remove_background_ok()])
    passed: list[int] = []
    with request_gate(lambda: passed.append(1)):
        client.remove_background(SOURCE)
    assert len(passed) == 2


def test_retry_after_as_seconds_and_as_http_date() -> None:
    now = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
    later = format_datetime(now + timedelta(seconds=42), usegmt=True)
    assert parse_retry_after(later, now=now.timestamp()) == pytest.approx(42, abs=1)
    assert parse_retry_after("1.5") == 1.5 and parse_retry_after("-3") == 0.0
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None

"""The Shopify Admin GraphQL client against the in-memory shop: throttling, tokens, errors."""

from __future__ import annotations

import pickle
from contextlib import contextmanager

import httpx
import pytest
import respx
from pydantic import SecretStr

from core.clients.shopify import ShopifyClient, ShopifyUserError
from core.clients.shopify_admin import ShopifyAdmin, search_value
from core.clients.shopify_auth import ClientCredentialsToken, StaticToken
from core.errors import ConfigurationError, PublishError
from core.settings import get_settings
from tests.helpers.clock import FakeClock
from tests.helpers.shopify_fake import (
    CLIENT_ID,
    CLIENT_SECRET,
    GRAPHQL,
    STATIC_TOKEN,
    TOKEN_URL,
    FakeShop,
)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def shop(clock: FakeClock):
    shop = FakeShop(clock.monotonic)
    shop.add_product("Example Wine 750ml", "VWS200433868")
    with respx.mock(assert_all_called=False) as router:
        shop.mount(router)
        yield shop


def _client(clock: FakeClock, token=None, **options) -> ShopifyClient:
    return ShopifyClient(
        httpx.Client(timeout=5),
        endpoint=GRAPHQL,
        token=token or StaticToken(SecretStr(STATIC_TOKEN)),
        sleep=clock.sleep,
        clock=clock.monotonic,
        **options,
    )


def _credentials(clock: FakeClock, secret: str = CLIENT_SECRET) -> ClientCredentialsToken:
    return ClientCredentialsToken(
        httpx.Client(timeout=5),
        url=TOKEN_URL,
        client_id=CLIENT_ID,
        client_secret=SecretStr(secret),
        clock=clock.monotonic,
    )


def test_query_speaks_the_admin_api_and_reads_the_cost(shop: FakeShop, clock: FakeClock) -> None:
    admin = ShopifyAdmin(_client(clock))
    found = admin.variants_by_sku("VWS200433868")
    request = shop.http_requests[-1]
    assert [v.sku for v in found] == ["VWS200433868"]
    assert found[0].product_title == "Example Wine 750ml"
    assert request.url == GRAPHQL
    assert request.headers["x-shopify-access-token"] == STATIC_TOKEN
    throttle = admin.client.throttle
    assert throttle is not None and throttle.available == 1990.0 and throttle.restore_rate == 100.0
    assert clock.sleeps == []


def test_search_values_are_quoted_and_escaped() -> None:
    assert search_value("VWS200433868") == '"VWS200433868"'
    assert search_value('a"b\\c:(d)') == '"a\\"b\\\\c:(d)"'


SEARCH_IDS = "query Ids($q: String!) { productVariants(first: 1, query: $q) { nodes { id } } }"


def test_a_low_bucket_makes_the_next_call_wait_first(shop: FakeShop, clock: FakeClock) -> None:
    client = _client(clock, reserve=50.0)
    shop.available = 40.0  # the answer will say 30 left
    client.query(SEARCH_IDS, {"q": 'sku:"X"'})
    assert clock.sleeps == []
    client.query(SEARCH_IDS, {"q": 'sku:"X"'})
    assert clock.sleeps == [pytest.approx((50 - 30) / 100)]
    assert shop.requests == ["search", "search"]  # waited instead of being throttled


def test_throttled_as_http_200_waits_for_the_points_then_succeeds(
    shop: FakeShop, clock: FakeClock
) -> None:
    shop.fault("search", "throttle")
    found = ShopifyAdmin(_client(clock)).variants_by_sku("VWS200433868")
    assert len(found) == 1
    wait = (752 - 120) / 100  # (requestedQueryCost - currentlyAvailable) / restoreRate
    assert len(clock.sleeps) == 1 and wait <= clock.sleeps[0] <= wait * 1.1 + 0.1
    assert shop.requests == ["search", "search"] and shop.calls == ["search"]


def test_throttled_as_http_429_waits_for_the_points(shop: FakeShop, clock: FakeClock) -> None:
    shop.fault("search", "throttle429")
    found = ShopifyAdmin(_client(clock)).variants_by_sku("VWS200433868")
    assert len(found) == 1
    assert len(clock.sleeps) == 1 and 6.32 <= clock.sleeps[0] <= 6.32 * 1.1 + 0.1
    assert shop.requests == ["search"] * 2


def test_http_429_honours_retry_after_then_the_bucket(shop: FakeShop, clock: FakeClock) -> None:
    shop.fault("search", "throttle429-retry-after")
    found = ShopifyAdmin(_client(clock)).variants_by_sku("VWS200433868")
    assert len(found) == 1
    assert 2.0 <= clock.sleeps[0] <= 2.0 * 1.1 + 0.1  # Retry-After: 2.0
    # The 752 points the call costs are still not back after 2 s: wait for them, not a 2nd 429.
    assert sum(clock.sleeps) == pytest.approx((752 - 120) / 100, abs=0.01)
    assert shop.requests == ["search"] * 2


def test_throttling_that_never_ends_is_a_retryable_error(shop: FakeShop, clock: FakeClock) -> None:
    shop.fault("search", *["throttle"] * 5)
    with pytest.raises(PublishError, match="kept throttling") as caught:
        ShopifyAdmin(_client(clock, max_attempts=5)).variants_by_sku("VWS200433868")
    assert caught.value.retryable
    assert len(shop.requests) == 5


def test_a_mutation_throttled_was_not_applied_so_it_is_sent_again(
    shop: FakeShop, clock: FakeClock
) -> None:
    shop.fault("stage", "throttle429")
    targets = ShopifyAdmin(_client(clock)).stage_uploads([("a.jpg", "image/jpeg")])
    assert len(targets) == 1 and shop.calls == ["stage"]


def test_network_errors_on_reads_are_retried(shop: FakeShop, clock: FakeClock) -> None:
    shop.fault("search", "connect", "read-timeout", "500", "internal")
    found = ShopifyAdmin(_client(clock)).variants_by_sku("VWS200433868")
    assert len(found) == 1
    assert len(clock.sleeps) == 4 and clock.sleeps[0] < clock.sleeps[-1]  # exponential backoff
    assert shop.calls == ["search"]


def test_network_errors_that_persist_become_a_retryable_publish_error(
    shop: FakeShop, clock: FakeClock
) -> None:
    shop.fault("search", *["connect"] * 3)
    with pytest.raises(PublishError, match="ConnectError") as caught:
        ShopifyAdmin(_client(clock, max_attempts=3)).variants_by_sku("VWS200433868")
    assert caught.value.retryable


def test_a_mutation_is_repeated_only_when_it_cannot_have_arrived(
    shop: FakeShop, clock: FakeClock
) -> None:
    admin = ShopifyAdmin(_client(clock))
    shop.fault("stage", "connect")
    admin.stage_uploads([("a.jpg", "image/jpeg")])
    assert shop.calls == ["stage"]
    shop.fault("stage", "read-timeout")
    with pytest.raises(PublishError, match="ReadTimeout") as caught:
        admin.stage_uploads([("a.jpg", "image/jpeg")])
    assert caught.value.retryable and shop.requests.count("stage") == 3
    shop.fault("stage", "500")
    with pytest.raises(PublishError, match="HTTP 503") as caught:
        admin.stage_uploads([("a.jpg", "image/jpeg")])
    assert caught.value.retryable and shop.requests.count("stage") == 4


def test_a_fixed_token_rejected_is_a_configuration_error(shop: FakeShop, clock: FakeClock) -> None:
    secret = "shpat_revoked000000000000000000000"
    with pytest.raises(ConfigurationError, match="HTTP 401") as caught:
        ShopifyAdmin(_client(clock, StaticToken(SecretStr(secret)))).variants_by_sku("X")
    assert secret not in str(caught.value) and secret not in repr(caught.value)
    assert len(shop.requests) == 1


@pytest.mark.parametrize(
    ("status", "error", "permanent"),
    [
        (402, PublishError, True),
        (423, PublishError, True),
        (403, ConfigurationError, None),
        (404, ConfigurationError, None),
    ],
)
def test_shop_states_that_retrying_cannot_fix(
    clock: FakeClock, status: int, error: type, permanent: bool | None
) -> None:
    with respx.mock() as router:
        router.post(GRAPHQL).mock(
            return_value=httpx.Response(status, json={"errors": "Unavailable Shop"})
        )
        with pytest.raises(error) as caught:
            _client(clock).query("query { shop { name } }")
    assert not caught.value.retryable
    if permanent is not None:
        assert caught.value.permanent is permanent


def test_client_credentials_token_is_fetched_once_and_refreshed_before_expiry(
    shop: FakeShop, clock: FakeClock
) -> None:
    token = _credentials(clock)
    admin = ShopifyAdmin(_client(clock, token))
    admin.variants_by_sku("VWS200433868")
    admin.variants_by_sku("VWS200433868")
    assert len(shop.issued) == 1
    clock.now += shop.token_ttl - 200  # inside the refresh margin, still valid at the shop
    admin.variants_by_sku("VWS200433868")
    assert len(shop.issued) == 2
    assert shop.requests == ["search"] * 3  # no request was rejected on the way


def test_an_expired_token_is_refreshed_once_after_a_401(shop: FakeShop, clock: FakeClock) -> None:
    token = _credentials(clock)
    admin = ShopifyAdmin(_client(clock, token))
    admin.variants_by_sku("VWS200433868")
    shop.tokens[shop.issued[0]] = clock.now  # expired early (revoked, clock skew)
    assert len(admin.variants_by_sku("VWS200433868")) == 1
    assert len(shop.issued) == 2 and shop.requests == ["search"] * 3
    shop.fault("search", "401", "401")
    with pytest.raises(ConfigurationError, match="401"):
        admin.variants_by_sku("VWS200433868")
    assert len(shop.issued) == 3  # one refresh, then a clear failure


def test_client_credentials_refused_names_the_settings_not_the_secret(
    shop: FakeShop, clock: FakeClock
) -> None:
    wrong = "wrong-secret-value-0001"
    with pytest.raises(ConfigurationError, match="CLIENT_ID") as caught:
        ShopifyAdmin(_client(clock, _credentials(clock, wrong))).variants_by_sku("X")
    assert wrong not in str(caught.value)
    assert shop.requests == []


def test_user_errors_name_field_message_and_code(shop: FakeShop, clock: FakeClock) -> None:
    product_id, (variant_id,) = shop.add_product("Other", "SKU-2")
    admin = ShopifyAdmin(_client(clock))
    with pytest.raises(ShopifyUserError) as caught:
        admin.append_variant_media(product_id, variant_id, "gid://shopify/MediaImage/1")
    error = caught.value
    assert error.codes == ("MEDIA_DOES_NOT_EXIST_ON_PRODUCT",)
    assert "variantMedia.0.mediaIds: Media does not exist on the product." in str(error)
    assert not error.retryable
    again = pickle.loads(pickle.dumps(error))
    assert (type(again), again.codes, again.message, again.permanent) == (
        ShopifyUserError,
        error.codes,
        error.message,
        True,
    )


def test_access_denied_points_at_the_scopes(clock: FakeClock) -> None:
    body = {
        "errors": [
            {"message": "FileCreate access denied", "extensions": {"code": "ACCESS_DENIED"}}
        ],
        "extensions": {
            "cost": {
                "requestedQueryCost": 10,
                "actualQueryCost": 10,
                "throttleStatus": {
                    "maximumAvailable": 2000.0,
                    "currentlyAvailable": 1990.0,
                    "restoreRate": 100.0,
                },
            }
        },
    }
    with respx.mock() as router:
        router.post(GRAPHQL).mock(return_value=httpx.Response(200, json=body))
        with pytest.raises(ConfigurationError, match="write_files"):
            _client(clock).mutate(
                "mutation { fileCreate { userErrors { field } } }", {}, root="fileCreate"
            )


def test_every_request_passes_the_gate(shop: FakeShop, clock: FakeClock) -> None:
    entered: list[str] = []

    @contextmanager
    def gate():
        entered.append("in")
        yield

    shop.fault("search", "throttle")
    ShopifyAdmin(_client(clock, gate=gate)).variants_by_sku("VWS200433868")
    assert entered == ["in", "in"]


def test_from_settings_builds_endpoint_and_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PACKSHOT_SHOPIFY_SHOP", "packshot-test.myshopify.com")
    monkeypatch.setenv("PACKSHOT_SHOPIFY_CLIENT_ID", CLIENT_ID)
    monkeypatch.setenv("PACKSHOT_SHOPIFY_CLIENT_SECRET", CLIENT_SECRET)
    get_settings.cache_clear()
    client = ShopifyClient.from_settings(get_settings())
    assert client.endpoint == GRAPHQL
    assert isinstance(client.token, ClientCredentialsToken)
    assert CLIENT_SECRET not in repr(get_settings())
    monkeypatch.delenv("PACKSHOT_SHOPIFY_CLIENT_SECRET")
    get_settings.cache_clear()
    with pytest.raises(ConfigurationError, match="ACCESS_TOKEN"):
        ShopifyClient.from_settings(get_settings())
    monkeypatch.setenv("PACKSHOT_SHOPIFY_CLIENT_SECRET", "changeme")
    get_settings.cache_clear()
    with pytest.raises(ValueError, match="placeholder"):
        get_settings()

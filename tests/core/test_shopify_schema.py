"""The fake shop checks every GraphQL request against Shopify's schema, as the real shop does.

So a misspelled field or a wrong input type in ``core/clients/shopify_admin.py`` fails the tests
instead of passing them (the saved schema: ``tests/helpers/shopify_admin_2026_10.graphql``).
"""

from __future__ import annotations

import hashlib

import httpx
import pytest
import respx
from graphql import parse, validate
from pydantic import SecretStr

from core.clients import shopify_admin
from core.clients.shopify import ShopifyClient
from core.clients.shopify_admin import ShopifyAdmin, stage_vars, variant_media_vars
from core.clients.shopify_auth import StaticToken
from core.errors import PublishError
from core.keys import composite_key
from core.publishers import PublishImage, PublishRequest
from core.publishers.shopify import ShopifyPublisher
from core.storage import MemoryStore
from tests.helpers.clock import FakeClock
from tests.helpers.shopify_fake import GRAPHQL, OPERATIONS, REFUSED, STATIC_TOKEN, FakeShop
from tests.helpers.shopify_schema import admin_schema

SKU = "VWS200433868"
DOCUMENTS = {
    name: value
    for name, value in vars(shopify_admin).items()
    if isinstance(value, str) and value.startswith(("query ", "mutation "))
}


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def shop(clock: FakeClock):
    shop = FakeShop(clock.monotonic)
    with respx.mock(assert_all_called=False) as router:
        shop.mount(router)
        yield shop


def _client(clock: FakeClock) -> ShopifyClient:
    token = StaticToken(SecretStr(STATIC_TOKEN))
    return ShopifyClient(
        httpx.Client(timeout=5),
        endpoint=GRAPHQL,
        token=token,
        sleep=clock.sleep,
        clock=clock.monotonic,
    )


def _publish(clock: FakeClock, store: MemoryStore, sha: str) -> None:
    images = []
    for n in (1, 2):
        key = composite_key("default", SKU, sha, n)
        store.put(key, f"jpeg {sha} {n}".encode(), content_type="image/jpeg")
        images.append(PublishImage(key=key, variant=n))
    request = PublishRequest(sku=SKU, sha256=sha, theme="default", images=tuple(images))
    timing = {"lookup_delay_s": 5.0, "poll_interval_s": 1.0, "media_timeout_s": 120.0}
    admin = ShopifyAdmin(_client(clock))
    ShopifyPublisher(admin, store, sleep=clock.sleep, clock=clock.monotonic, **timing).publish(
        request
    )


@pytest.mark.parametrize("name", sorted(DOCUMENTS))
def test_every_document_of_the_client_is_valid_for_the_admin_api(name: str) -> None:
    assert [e.message for e in validate(admin_schema(), parse(DOCUMENTS[name]))] == []


def test_a_publish_and_its_replacement_send_only_valid_requests(shop: FakeShop, clock) -> None:
    shop.add_product("Example Wine 750ml", SKU)
    store = MemoryStore()
    _publish(clock, store, hashlib.sha256(b"photo A").hexdigest())
    shop.search_hides_variant_media = True  # a lagging index: the variant itself is asked
    _publish(clock, store, hashlib.sha256(b"photo B").hexdigest())  # replaces A's media
    assert REFUSED not in shop.requests and shop.refusals == []
    assert set(shop.calls) == set(OPERATIONS.values())  # every operation the client has


def test_a_misspelled_field_is_refused_as_shopify_refuses_it(shop: FakeShop, clock) -> None:
    product_id, _ = shop.add_product("Example Wine 750ml", SKU)
    misspelled = shopify_admin.PRODUCT_MEDIA.replace("mediaContentType", "mediaContentTyp")
    with pytest.raises(PublishError, match="Field 'mediaContentTyp' doesn't exist on type 'Media'"):
        _client(clock).query(misspelled, {"id": product_id, "after": None})
    assert shop.requests == [REFUSED] and shop.calls == []
    (error,) = shop.refusals[0]
    assert error["extensions"] == {
        "code": "undefinedField",
        "typeName": "Media",
        "fieldName": "mediaContentTyp",
    }
    assert error["locations"] == [{"line": 5, "column": 22}]


def test_the_refusal_is_http_200_with_errors_and_no_data(shop: FakeShop) -> None:
    document = "query { shop { name } }"  # a field the client never asks for
    answer = httpx.post(
        GRAPHQL, json={"query": document}, headers={"X-Shopify-Access-Token": STATIC_TOKEN}
    )
    assert answer.status_code == 200 and set(answer.json()) == {"errors"}
    assert answer.json()["errors"][0]["message"] == "Field 'shop' doesn't exist on type 'QueryRoot'"


@pytest.mark.parametrize(
    ("document", "variables", "code", "message"),
    [
        (  # the variable declared with another input type than the argument takes
            shopify_admin.STAGE.replace("[StagedUploadInput!]!", "[CreateMediaInput!]!"),
            stage_vars([("a.jpg", "image/jpeg")]),
            "variableMismatch",
            "Variable '$input' of type '[CreateMediaInput!]!' used in position expecting type"
            " '[StagedUploadInput!]!'.",
        ),
        (  # an input field the input type does not have
            shopify_admin.APPEND,
            {
                "productId": "gid://shopify/Product/1",
                "variantMedia": [{"variantId": "v", "mediaId": "m"}],
            },
            "INVALID_VARIABLE",
            "Variable $variantMedia of type [ProductVariantAppendMediaInput!]! was provided invalid value",
        ),
        (  # a value the enum does not have
            shopify_admin.STAGE,
            {"input": [dict(stage_vars([("a.jpg", "image/jpeg")])["input"][0], resource="PHOTO")]},
            "INVALID_VARIABLE",
            "Variable $input of type [StagedUploadInput!]! was provided invalid value",
        ),
        (  # a list of IDs where one ID is wanted
            shopify_admin.DETACH,
            variant_media_vars("gid://shopify/Product/1", "v", "m") | {"productId": ["p"]},
            "INVALID_VARIABLE",
            "Variable $productId of type ID! was provided invalid value",
        ),
    ],
)
def test_a_wrong_input_type_is_refused(
    shop: FakeShop, clock, document: str, variables: dict, code: str, message: str
) -> None:
    with pytest.raises(PublishError, match="Shopify GraphQL error"):
        _client(clock).mutate(document, variables, root="any")
    errors = shop.refusals[0]
    assert {e["extensions"]["code"] for e in errors} == {code}
    assert message in [e["message"] for e in errors]
    assert shop.requests == [REFUSED] and shop.mutations() == []


def test_the_answer_carries_only_what_was_selected(shop: FakeShop, clock) -> None:
    shop.add_product("Example Wine 750ml", SKU)
    document = "query Ids($q: String!) { productVariants(first: 5, query: $q) { nodes { id } } }"
    data = _client(clock).query(document, {"q": f'sku:"{SKU}"'})
    assert [set(node) for node in data["productVariants"]["nodes"]] == [{"id"}]

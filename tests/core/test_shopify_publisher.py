"""The Shopify publisher against the in-memory shop: the right variant, the right media, once."""

from __future__ import annotations

import hashlib
import json

import httpx
import pytest
import respx
from pydantic import SecretStr

from core.clients.shopify import ShopifyClient, ShopifyUserError
from core.clients.shopify_admin import ShopifyAdmin
from core.clients.shopify_auth import StaticToken
from core.errors import ConfigurationError, PublishError
from core.keys import composite_key
from core.publishers import PublishImage, PublishRequest, check_publisher, new_publisher
from core.publishers._marker import MAX_ALT, MediaIdentity, alt_text
from core.publishers.shopify import ShopifyPublisher
from core.settings import get_settings
from core.storage import MemoryStore
from tests.helpers.clock import FakeClock
from tests.helpers.shopify_fake import GRAPHQL, STAGED_URL, STATIC_TOKEN, FakeShop

SKU = "VWS200433868"
SHA_A = hashlib.sha256(b"photo A").hexdigest()
SHA_B = hashlib.sha256(b"photo B").hexdigest()
TITLE = "Example Wine 750ml"


class PresigningStore(MemoryStore):
    """A memory store that hands out https URLs, as S3 does (presigned GET)."""

    def url(self, key: str, *, expires_in: int = 3600) -> str:
        return (
            f"https://assets.s3.amazonaws.com/{key}?X-Amz-Expires={expires_in}&X-Amz-Signature=f00d"
        )


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def shop(clock: FakeClock):
    shop = FakeShop(clock.monotonic)
    with respx.mock(assert_all_called=False) as router:
        shop.mount(router)
        yield shop


@pytest.fixture
def product(shop: FakeShop) -> tuple[str, str]:
    product_id, (variant_id, _other) = shop.add_product(TITLE, SKU, SKU + "0")
    return product_id, variant_id


def _publisher(clock: FakeClock, store: MemoryStore, **options) -> ShopifyPublisher:
    client = ShopifyClient(
        httpx.Client(timeout=5),
        endpoint=GRAPHQL,
        token=StaticToken(SecretStr(STATIC_TOKEN)),
        sleep=clock.sleep,
        clock=clock.monotonic,
    )
    settings = {"lookup_delay_s": 5.0, "poll_interval_s": 1.0, "media_timeout_s": 120.0}
    return ShopifyPublisher(
        ShopifyAdmin(client),
        store,
        sleep=clock.sleep,
        clock=clock.monotonic,
        **(settings | options),
    )


def _request(
    store: MemoryStore, sha: str, *, sku: str = SKU, theme: str = "default", count: int = 2
) -> PublishRequest:
    images = []
    for n in range(1, count + 1):
        key = composite_key(theme, sku, sha, n)
        store.put(key, f"jpeg {sha} {n}".encode(), content_type="image/jpeg")
        images.append(PublishImage(key=key, variant=n))
    return PublishRequest(sku=sku, sha256=sha, theme=theme, images=tuple(images))


def test_publishes_composites_as_media_and_shows_the_first_on_the_variant(
    shop, clock, product
) -> None:
    product_id, variant_id = product
    store = MemoryStore()
    result = _publisher(clock, store).publish(_request(store, SHA_A))
    gallery = shop.gallery(product_id)
    assert [m.status for m in gallery] == ["READY", "READY"]
    assert [m.alt for m in gallery] == [
        f"{TITLE} – default 1 [packshot:{SKU}:default:{SHA_A[:8]}:1]",
        f"{TITLE} – default 2 [packshot:{SKU}:default:{SHA_A[:8]}:2]",
    ]
    assert result.product_id == product_id and result.variant_id == variant_id
    assert result.media_ids == tuple(m.id for m in gallery) == result.created
    assert result.kept == () and result.removed == ()
    assert shop.variants[variant_id].media_id == gallery[0].id
    # local store: bytes went through staged uploads, every form field in order, the file last
    assert sorted(shop.uploaded.values()) == [
        f"jpeg {SHA_A} 1".encode(),
        f"jpeg {SHA_A} 2".encode(),
    ]
    assert all(
        form[-1] == "file" and form[:2] == ["Content-Type", "success_action_status"]
        for form in shop.upload_forms
    )
    assert {url.rsplit("/", 1)[1] for url in shop.uploaded} == {
        f"{SKU}-default-{SHA_A[:8]}-1.jpg",
        f"{SKU}-default-{SHA_A[:8]}-2.jpg",
    }
    assert shop.mutations() == ["stage", "add_media", "append"]
    assert shop.calls.count("media_status") == 2  # UPLOADED → PROCESSING → READY


def test_the_search_is_fuzzy_so_only_the_exact_sku_counts(shop, clock) -> None:
    shop.add_product("Longer SKU first", SKU + "9")
    product_id, (variant_id,) = shop.add_product(TITLE, SKU)
    store = MemoryStore()
    result = _publisher(clock, store).publish(_request(store, SHA_A, count=1))
    assert (result.product_id, result.variant_id) == (product_id, variant_id)


def test_product_not_found_after_a_few_searches_fails_for_good(shop, clock) -> None:
    shop.add_product("Another", SKU + "1")  # the fuzzy search finds it; it is not our SKU
    store = MemoryStore()
    with pytest.raises(PublishError, match="product not found in Shopify") as caught:
        _publisher(clock, store, lookup_attempts=3).publish(_request(store, SHA_A))
    assert caught.value.permanent and not caught.value.retryable
    assert shop.requests == ["search"] * 3 and clock.sleeps == [5.0, 5.0]
    assert shop.mutations() == []


def test_a_lagging_search_index_is_asked_again(shop, clock, product) -> None:
    shop.search_misses = 1
    store = MemoryStore()
    result = _publisher(clock, store).publish(_request(store, SHA_A, count=1))
    assert result.product_id == product[0] and shop.requests[:2] == ["search", "search"]


def test_a_sku_on_two_products_is_never_guessed(shop, clock) -> None:
    shop.add_product("Red", SKU)
    shop.add_product("Blue", SKU)
    store = MemoryStore()
    with pytest.raises(ConfigurationError, match="2 variants") as caught:
        _publisher(clock, store).publish(_request(store, SHA_A))
    assert not caught.value.retryable and shop.mutations() == []


def test_media_that_fails_processing_fails_the_step_with_the_reason(shop, clock, product) -> None:
    product_id, variant_id = product
    store = PresigningStore()
    request = _request(store, SHA_A)
    shop.fail_sources.add(store.url(request.images[1].key, expires_in=6 * 3600))
    with pytest.raises(
        PublishError, match="IMAGE_DOWNLOAD_FAILURE: Image could not be downloaded"
    ) as caught:
        _publisher(clock, store).publish(request)
    assert caught.value.permanent and request.images[1].key in str(caught.value)
    assert [m.status for m in shop.gallery(product_id)] == ["PROCESSING"]  # the FAILED one is gone
    assert shop.variants[variant_id].media_id is None
    assert "stage" not in shop.calls  # an https store URL is handed to Shopify directly


def test_an_https_store_url_is_the_original_source(shop, clock, product) -> None:
    store = PresigningStore()
    _publisher(clock, store).publish(_request(store, SHA_A))
    sources = [m.source for m in shop.gallery(product[0])]
    assert sources == [
        store.url(composite_key("default", SKU, SHA_A, n), expires_in=6 * 3600) for n in (1, 2)
    ]
    assert shop.mutations() == ["add_media", "append"] and shop.uploaded == {}


def test_staged_uploads_can_be_forced_for_private_buckets(shop, clock, product) -> None:
    store = PresigningStore()
    _publisher(clock, store, staged_uploads=True).publish(_request(store, SHA_A))
    assert all(m.source.startswith(STAGED_URL) for m in shop.gallery(product[0]))


def test_replaying_the_same_job_keeps_what_exists(shop, clock, product) -> None:
    product_id, variant_id = product
    store = MemoryStore()
    publisher = _publisher(clock, store)
    first = publisher.publish(_request(store, SHA_A))
    before = list(shop.calls)
    again = publisher.publish(_request(store, SHA_A))
    assert again.media_ids == first.media_ids and again.kept == first.media_ids
    assert again.created == () and again.removed == ()
    assert len(shop.gallery(product_id)) == 2
    assert shop.calls[len(before) :] == ["search", "product_media"]  # nothing sent but reads
    assert shop.variants[variant_id].media_id == first.media_ids[0]


def test_a_new_photo_replaces_only_packshots_earlier_media_for_that_sku_and_theme(
    shop, clock, product
) -> None:
    product_id, variant_id = product
    handmade = shop.add_foreign_media(product_id, "Bottle, front, shot by the merchant")
    shop.variants[variant_id].media_id = handmade
    store = MemoryStore()
    publisher = _publisher(clock, store)
    white = publisher.publish(_request(store, SHA_A, theme="white", count=1))
    sibling = publisher.publish(_request(store, SHA_A, sku=SKU + "0", count=1))
    first = publisher.publish(_request(store, SHA_A))
    assert (
        shop.variants[variant_id].media_id == first.media_ids[0]
    )  # re-pointed from the handmade one
    calls_before = len(shop.calls)
    second = publisher.publish(_request(store, SHA_B))
    gallery = {m.id: m for m in shop.gallery(product_id)}
    assert set(second.removed) == set(first.media_ids)
    assert not set(first.media_ids) & gallery.keys()
    assert set(second.created) <= gallery.keys()
    assert handmade in gallery and gallery[handmade].alt == "Bottle, front, shot by the merchant"
    assert (
        white.media_ids[0] in gallery and sibling.media_ids[0] in gallery
    )  # other theme, other SKU
    assert len(gallery) == 1 + 1 + 1 + 2
    assert shop.variants[variant_id].media_id == second.media_ids[0]
    # safe order: add new → READY → re-point the variant → remove the old
    order = [c for c in shop.calls[calls_before:] if c != "product_media"]
    assert order == [
        "search",
        "stage",
        "add_media",
        "media_status",
        "media_status",
        "detach",
        "append",
        "file_delete",
    ]


def test_a_stale_search_index_is_corrected_by_detaching_first(shop, clock, product) -> None:
    product_id, variant_id = product
    shop.variants[variant_id].media_id = shop.add_foreign_media(product_id, "by hand")
    shop.search_hides_variant_media = True  # the search says the variant has no image
    store = MemoryStore()
    result = _publisher(clock, store).publish(_request(store, SHA_A, count=1))
    assert shop.variants[variant_id].media_id == result.media_ids[0]
    assert shop.mutations()[-3:] == ["append", "detach", "append"]


def test_non_ready_media_is_attached_once_ready(shop, clock, product) -> None:
    shop.non_ready_appends = 1
    store = MemoryStore()
    result = _publisher(clock, store).publish(_request(store, SHA_A, count=1))
    assert shop.variants[product[1]].media_id == result.media_ids[0]
    assert shop.mutations()[-2:] == ["append", "append"]


def test_media_that_never_gets_ready_is_a_retryable_timeout(shop, clock, product) -> None:
    shop.polls_to_ready = 10**6
    shop._process = lambda media: setattr(media, "status", "PROCESSING")  # stuck
    store = MemoryStore()
    with pytest.raises(PublishError, match="not READY after 30 s") as caught:
        _publisher(clock, store, media_timeout_s=30).publish(_request(store, SHA_A, count=1))
    assert caught.value.retryable
    assert sum(clock.sleeps) <= 30


def test_a_timeout_after_shopify_applied_the_update_does_not_duplicate(
    shop, clock, product
) -> None:
    store = MemoryStore()
    publisher = _publisher(clock, store)
    shop.fault("add_media", "applied-then-timeout")
    with pytest.raises(PublishError, match="ReadTimeout") as caught:
        publisher.publish(_request(store, SHA_A))
    assert caught.value.retryable  # the step is retried …
    result = publisher.publish(_request(store, SHA_A))  # … and finds what the lost answer made
    assert len(shop.gallery(product[0])) == 2 and result.created == () and len(result.kept) == 2


def test_failed_media_of_ours_left_from_before_is_replaced(shop, clock, product) -> None:
    product_id, _ = product
    identity = MediaIdentity.of(SKU, "default", SHA_A, 1)
    broken = shop.add_foreign_media(
        product_id, alt_text("{title}", identity, title=TITLE), status="FAILED"
    )
    store = MemoryStore()
    result = _publisher(clock, store).publish(_request(store, SHA_A, count=1))
    assert result.removed == (broken,) and len(result.created) == 1
    assert [m.id for m in shop.gallery(product_id)] == list(result.created)


def test_invalid_source_is_a_user_error_with_the_field(shop, clock, product) -> None:
    class FileUrls(PresigningStore):
        def url(self, key: str, *, expires_in: int = 3600) -> str:
            return "https://"  # nothing Shopify can fetch

    store = FileUrls()
    shop_errors = []
    try:
        _publisher(clock, store).publish(_request(store, SHA_A, count=1))
    except ShopifyUserError as exc:
        shop_errors.append(exc)
    assert shop_errors and "media.0.originalSource: Image URL is invalid" in str(shop_errors[0])
    assert not shop_errors[0].retryable and shop.gallery(product[0]) == []


def test_locked_files_are_deleted_once_unlocked(shop, clock, product) -> None:
    product_id, _ = product
    store = MemoryStore()
    publisher = _publisher(clock, store)
    old = publisher.publish(_request(store, SHA_A, count=1))
    shop.media[old.media_ids[0]].status = "PROCESSING"  # e.g. the merchant is re-cropping it
    original = shop._file_delete

    def unlock_after_first(variables: dict) -> dict:
        answer = original(variables)
        if old.media_ids[0] in shop.media:
            shop.media[old.media_ids[0]].status = "READY"
        return answer

    shop._file_delete = unlock_after_first
    new = publisher.publish(_request(store, SHA_B, count=1))
    assert new.removed == old.media_ids and shop.calls.count("file_delete") == 2
    assert [m.id for m in shop.gallery(product_id)] == list(new.media_ids)


def test_a_long_gallery_is_read_page_by_page(shop, clock, product) -> None:
    shop.page_size = 1
    store = MemoryStore()
    publisher = _publisher(clock, store)
    publisher.publish(_request(store, SHA_A, count=2))
    again = publisher.publish(_request(store, SHA_A, count=2))
    assert again.created == () and len(again.kept) == 2


def test_dry_run_lists_the_mutations_and_sends_none(shop, clock, product) -> None:
    product_id, variant_id = product
    store = PresigningStore()
    publisher = _publisher(clock, store)
    old = publisher.publish(_request(store, SHA_A, count=1))
    mutations_before = shop.mutations()
    plan = publisher.plan(_request(store, SHA_B, count=1))
    assert shop.mutations() == mutations_before
    assert [m.name for m in plan.mutations] == [
        "productUpdate",
        "productVariantDetachMedia",
        "productVariantAppendMedia",
        "fileDelete",
    ]
    update = plan.mutations[0].variables
    assert update["product"] == {"id": product_id}
    assert update["media"][0]["alt"].endswith(f"[packshot:{SKU}:default:{SHA_B[:8]}:1]")
    assert "f00d" not in json.dumps(plan.as_dict())  # the presigned URL's signature is redacted
    assert plan.mutations[2].variables["variantMedia"] == [
        {"variantId": variant_id, "mediaIds": ["<new media 1>"]}
    ]
    assert plan.remove == old.media_ids
    assert publisher.plan(_request(store, SHA_A, count=1)).mutations == ()  # a replay sends nothing
    local = _publisher(clock, MemoryStore())
    assert (
        local.plan(_request(local.store, SHA_B, count=1)).mutations[0].name == "stagedUploadsCreate"
    )


def test_a_request_without_images_changes_nothing(shop, clock, product) -> None:
    store = MemoryStore()
    publisher = _publisher(clock, store)
    publisher.publish(_request(store, SHA_A, count=1))
    empty = PublishRequest(sku=SKU, sha256=SHA_B, theme="default", images=())
    with pytest.raises(PublishError, match="no composites"):
        publisher.publish(empty)
    assert len(shop.gallery(product[0])) == 1


def test_alt_text_is_cut_to_fit_with_the_marker() -> None:
    identity = MediaIdentity.of("S" * 64, "t" * 64, SHA_A, 3)
    alt = alt_text("{title} on {theme} #{n}", identity, title="Very long title " * 60)
    assert len(alt) == MAX_ALT and alt.endswith(identity.marker)
    assert MediaIdentity.parse(alt) == identity
    assert MediaIdentity.parse("Bottle [packshot:other]") is None


def test_registry_checks_names_and_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PACKSHOT_PUBLISHER", "shopfiy")
    get_settings.cache_clear()
    with pytest.raises(ConfigurationError, match="known: none, shopify"):
        check_publisher(get_settings())
    monkeypatch.setenv("PACKSHOT_PUBLISHER", "shopify")
    get_settings.cache_clear()
    with pytest.raises(ConfigurationError, match="PACKSHOT_SHOPIFY_SHOP"):
        check_publisher(get_settings())
    monkeypatch.setenv("PACKSHOT_SHOPIFY_SHOP", "packshot-test")
    get_settings.cache_clear()
    with pytest.raises(ConfigurationError, match="ACCESS_TOKEN"):
        check_publisher(get_settings())
    monkeypatch.setenv("PACKSHOT_SHOPIFY_ACCESS_TOKEN", STATIC_TOKEN)
    get_settings.cache_clear()
    publisher = new_publisher(get_settings(), store=MemoryStore())
    assert publisher.name == "shopify" and STATIC_TOKEN not in repr(vars(publisher))
    monkeypatch.setenv("PACKSHOT_PUBLISHER", "none")
    get_settings.cache_clear()
    none = new_publisher(get_settings(), store=MemoryStore())
    request = PublishRequest(sku=SKU, sha256=SHA_A, theme="default", images=())
    assert none.publish(request).product_id is None and none.plan(request).mutations == ()

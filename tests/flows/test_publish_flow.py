"""The per-image flow with PACKSHOT_PUBLISHER=shopify, against the in-memory shop behind respx."""

from __future__ import annotations

import hashlib
import json
import uuid
from pathlib import Path

import pytest
import respx
from sqlmodel import select
from typer.testing import CliRunner

from core.db import session_scope
from core.settings import get_settings
from core.tables import Job, JobStep, Step
from deployments.cli import app
from flows.process_image import process_image
from tests.helpers.images import jpeg_bytes, product_photo
from tests.helpers.shopify_fake import SHOP, STATIC_TOKEN, FakeShop

pytestmark = pytest.mark.xdist_group("prefect")

PHOTO = jpeg_bytes(product_photo())
SHA = hashlib.sha256(PHOTO).hexdigest()


@pytest.fixture
def shop(monkeypatch: pytest.MonkeyPatch):
    for name, value in {
        "PUBLISHER": "shopify",
        "SHOPIFY_SHOP": SHOP,
        "SHOPIFY_ACCESS_TOKEN": STATIC_TOKEN,
        "SHOPIFY_POLL_INTERVAL_S": "0.01",
        "SHOPIFY_LOOKUP_ATTEMPTS": "2",
        "SHOPIFY_LOOKUP_DELAY_S": "0",
        "SHOPIFY_RATE": "50",
    }.items():
        monkeypatch.setenv(f"PACKSHOT_{name}", value)
    get_settings.cache_clear()
    shop = FakeShop()
    with respx.mock(assert_all_called=False) as router:
        router.route(host="127.0.0.1").pass_through()  # the CDN stand-in and Prefect's API
        router.route(host="localhost").pass_through()
        shop.mount(router)
        yield shop


def _publish_row(job_id: str) -> JobStep:
    with session_scope(get_settings().database_url) as session:
        query = select(JobStep).where(
            JobStep.job_id == uuid.UUID(job_id), JobStep.step == Step.PUBLISH
        )
        return session.exec(query).one()


def _manifest(home: Path, sku: str) -> tuple[str, dict]:
    text = (home / "store" / f"manifests/{sku}/{SHA}-default.json").read_text()
    return text, json.loads(text)


def test_published_job_records_product_and_media_ids(photo_url, shop, packshot_env: Path) -> None:
    product_id, (variant_id,) = shop.add_product("Blue Bottle", "SKU-P1")
    result = process_image(sku="SKU-P1", image_url=photo_url, sha256=SHA)
    assert result["status"] == "DONE"
    gallery = [m.id for m in shop.gallery(product_id)]
    assert len(gallery) == 2 and shop.variants[variant_id].media_id == gallery[0]
    row = _publish_row(str(result["jobId"]))
    details = json.loads(row.details or "{}")
    assert (row.state, row.provider) == ("COMPLETED", "shopify")
    assert details["productId"] == product_id and details["mediaIds"] == gallery
    text, manifest = _manifest(packshot_env, "SKU-P1")
    assert manifest["shopify"]["productId"] == product_id
    assert manifest["shopify"]["variantId"] == variant_id
    assert manifest["shopify"]["mediaIds"] == gallery
    assert STATIC_TOKEN not in text and STATIC_TOKEN not in (row.details or "")
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:  # the step went through the strict limits
        assert client.read_global_concurrency_limit_by_name("shopify-inflight").limit == 4

    again = process_image(sku="SKU-P1", image_url=photo_url, sha256=SHA)
    assert again["status"] == "DONE" and again["jobId"] == result["jobId"]
    assert [m.id for m in shop.gallery(product_id)] == gallery  # a replay adds nothing
    replay = json.loads(_publish_row(str(again["jobId"])).details or "{}")
    assert replay["created"] == [] and replay["kept"] == gallery
    assert _manifest(packshot_env, "SKU-P1")[1]["shopify"]["mediaIds"] == gallery

    preview = CliRunner().invoke(app, ["publish", str(result["jobId"]), "--dry-run"])
    assert preview.exit_code == 0, preview.output
    assert "nothing to send" in preview.output and product_id in preview.output
    assert STATIC_TOKEN not in preview.output


def test_sku_missing_in_shopify_fails_the_job_at_publish(
    photo_url, shop, packshot_env: Path
) -> None:
    shop.add_product("Someone else's", "SKU-P20")  # the fuzzy search finds it: not ours
    with pytest.raises(Exception, match="publish: PublishError: product not found in Shopify"):
        process_image(sku="SKU-P2", image_url=photo_url, sha256=SHA)
    with session_scope(get_settings().database_url) as session:
        job = session.exec(select(Job).where(Job.sku == "SKU-P2")).one()
    assert (job.status, job.error_step, job.error_type) == ("FAILED", "publish", "PublishError")
    assert "product not found in Shopify" in (job.error or "")
    assert STATIC_TOKEN not in (job.error or "")
    row = _publish_row(str(job.id))
    assert (row.state, row.attempts) == ("FAILED", 1)  # permanent: not retried by Prefect
    assert shop.requests == ["search", "search"] and shop.mutations() == []
    assert _manifest(packshot_env, "SKU-P2")[1]["shopify"] is None


def test_a_held_job_reaches_the_shop_only_once_approved(photo_url, shop, monkeypatch) -> None:
    from core import review

    # The drawn bottle covers a fifth of the photo; demanding half holds it for review.
    monkeypatch.setenv("PACKSHOT_REVIEW", "auto")
    monkeypatch.setenv("PACKSHOT_QUALITY_FOREGROUND_MIN", "0.5")
    get_settings.cache_clear()
    product_id, _ = shop.add_product("Held Bottle", "SKU-H1")
    rejected_id, _ = shop.add_product("Rejected Bottle", "SKU-H2")
    held = process_image(sku="SKU-H1", image_url=photo_url, sha256=SHA)
    other = process_image(sku="SKU-H2", image_url=photo_url, sha256=SHA)
    assert held["status"] == other["status"] == "NEEDS_REVIEW"
    assert shop.gallery(product_id) == [] and shop.gallery(rejected_id) == []

    with session_scope(get_settings().database_url) as session:
        review.decide(session, job_id=uuid.UUID(str(held["jobId"])), decision="approve", by="ed")
        review.decide(
            session, job_id=uuid.UUID(str(other["jobId"])), decision="reject", by="ed", reason="x"
        )
    published = process_image(job_id=uuid.UUID(str(held["jobId"])))  # what approval runs
    assert published["status"] == "DONE"
    assert len(shop.gallery(product_id)) == 2
    assert shop.gallery(rejected_id) == []  # a rejected job never reaches the shop

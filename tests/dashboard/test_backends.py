"""The dashboard on PostgreSQL and on an S3 store (moto): same pages, presigned downloads."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import boto3
import pytest
from moto import mock_aws

from core import settings as settings_module
from core.settings import Settings, get_settings
from core.storage import ObjectStore, new_store
from core.tables import Step
from dashboard import stats
from tests.dashboard.rendered import shown
from tests.dashboard.seed import seed_job
from tests.helpers.postgres import temporary_database

BUCKET = "packshot-dashboard"


@pytest.fixture
def postgres(monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    with temporary_database() as url:
        monkeypatch.setenv("PACKSHOT_DATABASE_URL", url)
        settings_module.get_settings.cache_clear()
        yield get_settings()


@pytest.fixture
def s3_store(monkeypatch: pytest.MonkeyPatch) -> Iterator[ObjectStore]:
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    with mock_aws():
        boto3.client("s3", region_name="us-east-1").create_bucket(Bucket=BUCKET)
        monkeypatch.setenv("PACKSHOT_STORE_URL", f"s3://{BUCKET}/assets")
        settings_module.get_settings.cache_clear()
        yield new_store(get_settings().store_url)


def _links(at) -> list[str]:
    labels = [shown(link.proto.label) for link in at.get("page_link")]
    return [label for label in labels if " · " not in label]


def test_postgres_overview_filters_and_job_page(app, postgres, tmp_path):
    store = new_store(postgres.store_url)
    done = seed_job(postgres.database_url, store, sku="Lamp-1")
    seed_job(postgres.database_url, store, sku="MUG-7", theme="white", fail_in=Step.COMPOSITE)
    at = app()
    metrics = {metric.label: metric.value for metric in at.metric}
    assert metrics["Jobs"] == "2" and metrics["Failed"] == "1"
    # The hour buckets and percentiles are written per dialect: check them on PostgreSQL.
    overview = stats.overview(postgres.database_url)
    assert sum(count for _, count in overview.per_hour) == 2
    assert {stat.step for stat in overview.step_stats} >= {"download", "remove_background"}
    assert overview.cost_today == pytest.approx(0.025)
    # ILIKE on PostgreSQL: the SKU filter ignores case there too.
    at.text_input(key="jobs-sku").input("LAMP").run()
    assert _links(at) == ["Lamp-1"]
    today = datetime.now(UTC).date()
    at.date_input(key="jobs-dates").set_value((today - timedelta(days=1), today)).run()
    assert _links(at) == ["Lamp-1"]

    job_page = app(job=str(done), tab="Derivatives")
    assert "Step 7 of 7 (100%)" in " ".join(node.value for node in job_page.get("html"))
    assert sum(len(node.value) for node in job_page.get("image")) == 18


def test_s3_store_job_page_with_presigned_downloads(app, s3_store, settings):
    done = seed_job(get_settings().database_url, s3_store, sku="LAMP-1")
    at = app(job=str(done), tab="Composites")
    assert sum(len(node.value) for node in at.get("image")) == 2
    html = " ".join(node.value for node in at.get("html"))
    links = [part.split('"', 1)[0].replace("&amp;", "&") for part in html.split('<a href="')[1:]]
    assert len(links) == 26
    query = parse_qs(urlsplit(links[0]).query)
    assert "X-Amz-Signature" in query and "X-Amz-Expires" in query
    assert all(
        urlsplit(url).path.startswith(f"/{BUCKET}/assets/") or f"{BUCKET}." in url for url in links
    )
    # On S3 only the ZIP is served by the dashboard; every file has its own presigned link.
    assert [button.label for button in at.download_button] == ["Download all (.zip)"]
    assert not [box for box in at.selectbox if box.key == "assets-file"]


def test_s3_missing_object_is_a_placeholder(app, s3_store):
    done = seed_job(get_settings().database_url, s3_store, sku="LAMP-1")
    composite = next(key for key in s3_store.list("composites/") if key.endswith("_1_master.jpg"))
    s3_store.delete(composite)
    at = app(job=str(done), tab="Composites")
    assert sum(len(node.value) for node in at.get("image")) == 1
    assert any(f"missing from the store: {composite}" in shown(w.value) for w in at.warning)

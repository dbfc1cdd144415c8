"""Dashboard fixtures: seeded jobs with real images in the store, and a ready ``AppTest``."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from core.settings import Settings, get_settings
from core.storage import ObjectStore, new_store
from core.tables import JobStatus, Step
from dashboard.launch import APP_PATH
from tests.dashboard import hostile
from tests.dashboard.prefect_stub import FakeDeployments, fake_deployments, reachable_prefect_api
from tests.dashboard.seed import seed_job


@pytest.fixture(autouse=True)
def _fresh_streamlit(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Empty caches around every test; skip AppTest's scan of every installed package.

    AppTest looks for custom components in all ~180 installed distributions (3 s per AppTest
    on this machine); the dashboard uses none.
    """
    from streamlit.components.v2.component_manager import BidiComponentManager

    def _no_scan(self: BidiComponentManager, *, start_file_watching: bool = False) -> None:
        return None

    monkeypatch.setattr(BidiComponentManager, "discover_and_register_components", _no_scan)
    st.cache_data.clear()
    st.cache_resource.clear()
    yield
    st.cache_data.clear()
    st.cache_resource.clear()


@pytest.fixture
def settings() -> Settings:
    """The test's settings (fresh PACKSHOT_HOME from the root conftest)."""
    return get_settings()


@pytest.fixture
def store(settings: Settings) -> ObjectStore:
    """The test's local object store."""
    return new_store(settings.store_url)


@pytest.fixture
def done_job(settings: Settings, store: ObjectStore) -> uuid.UUID:
    """A DONE job with all 26 files."""
    return seed_job(settings.database_url, store, sku="LAMP-1")


@pytest.fixture
def failed_job(settings: Settings, store: ObjectStore) -> uuid.UUID:
    """A job that failed in the composite step (stage 4 of 7)."""
    return seed_job(
        settings.database_url, store, sku="MUG-7", theme="white", fail_in=Step.COMPOSITE
    )


@pytest.fixture
def running_job(settings: Settings, store: ObjectStore) -> uuid.UUID:
    """A job at BACKGROUND_READY with its first composite running."""
    return seed_job(
        settings.database_url, store, sku="SHIRT-3", stop_after=JobStatus.BACKGROUND_READY
    )


@pytest.fixture
def hostile_job(settings: Settings, store: ObjectStore) -> uuid.UUID:
    """A job that failed in the composite step, with markup in its SKU, source and error."""
    return seed_job(
        settings.database_url,
        store,
        sku=hostile.SKU,
        fail_in=Step.COMPOSITE,
        image_url=hostile.SOURCE,
        error=hostile.ERROR,
    )


@pytest.fixture
def app() -> Callable[..., AppTest]:
    """Run the dashboard's entry script with optional query parameters (``job=…``, ``tab=…``)."""

    def run(**query: str) -> AppTest:
        at = AppTest.from_file(str(APP_PATH), default_timeout=60)
        at.query_params.update(query)
        at.run()
        assert not at.exception, [e.value for e in at.exception]
        return at

    return run


@pytest.fixture
def prefect_api(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A reachable "Prefect API" (it answers /health) as PREFECT_API_URL."""
    yield from reachable_prefect_api(monkeypatch)


@pytest.fixture
def deployments(monkeypatch: pytest.MonkeyPatch) -> FakeDeployments:
    """Prefect's ``arun_deployment`` replaced; ``.runs`` lists the runs it was asked for."""
    return fake_deployments(monkeypatch)

"""Shared fixtures: every test gets its own Packshot home (SQLite file, local store)."""

from __future__ import annotations

import gc
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

# Prefect's test server: skip background writers that contend with SQLite, never phone home.
os.environ.setdefault("PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_SERVICES_EVENT_PERSISTER_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")


@pytest.fixture(autouse=True)
def packshot_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh PACKSHOT_HOME with embedded defaults; settings and caches reset around the test."""
    from core import settings as settings_module
    from core.db import reset_engines
    from tests.helpers.postgres import TEST_VARIABLES

    for name in list(os.environ):
        if name.startswith("PACKSHOT_") and name not in TEST_VARIABLES:
            monkeypatch.delenv(name)
    home = tmp_path / "packshot-home"
    monkeypatch.setenv("PACKSHOT_HOME", str(home))
    monkeypatch.setenv("PACKSHOT_ALLOW_PRIVATE_SOURCES", "true")
    monkeypatch.setenv("PACKSHOT_RETRY_BACKOFF_S", "0")
    # Whether the quality gate holds a drawn test photo is not what the pipeline's tests check;
    # the gate's own tests (tests/flows/test_review.py) turn it on. Verdicts are recorded anyway.
    monkeypatch.setenv("PACKSHOT_REVIEW", "off")
    monkeypatch.chdir(tmp_path)
    settings_module._overrides.clear()
    settings_module.get_settings.cache_clear()
    _clear_runtime_caches()
    packshot_logger = logging.getLogger("packshot")
    handlers, propagate = list(packshot_logger.handlers), packshot_logger.propagate
    yield home
    # A CLI test's logging handler writes to the captured stderr it ran with, closed afterwards.
    packshot_logger.handlers[:] = handlers
    packshot_logger.propagate = propagate
    settings_module._overrides.clear()
    settings_module.get_settings.cache_clear()
    _clear_runtime_caches()
    reset_engines()
    # A webhook app started in this test froze the heap, as it does in its own process
    # (core.heap): here the next tests' garbage must stay collectable.
    gc.unfreeze()


def _clear_runtime_caches() -> None:
    import sys

    runtime = sys.modules.get("tasks._runtime")
    if runtime is not None:
        runtime.reset()
    registry = sys.modules.get("core.providers.registry")
    if registry is not None:
        registry.reset_providers()


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A migrated job database: a SQLite file, then a throwaway PostgreSQL database."""
    from core.db import upgrade_schema
    from tests.helpers.postgres import temporary_database

    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'jobs.db'}"
        upgrade_schema(url)
        yield url
        return
    with temporary_database() as url:
        upgrade_schema(url)
        yield url


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Integration tests first: their files are the longest, so they must start early.

    ``make test`` hands out whole files (``--dist loadfile``, so each integration file keeps
    its own site in one process) in this order (``--no-loadscope-reorder``).
    """
    items.sort(key=lambda item: "/integration/" not in item.nodeid.replace("\\", "/"))


@pytest.fixture
def db_warnings() -> Iterator[list[logging.LogRecord]]:
    """WARNING records of ``packshot.db`` (a handler of its own: the logger may not propagate)."""
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = records.append  # type: ignore[method-assign]
    logger = logging.getLogger("packshot.db")
    logger.addHandler(handler)
    try:
        yield records
    finally:
        logger.removeHandler(handler)


@pytest.fixture(scope="session")
def prefect_server() -> Iterator[str]:
    """Start Prefect's test harness once; its API URL is exported for the CLI's own lookup."""
    from prefect.settings import (
        PREFECT_API_URL,
        PREFECT_FLOWS_HEARTBEAT_FREQUENCY,
        temporary_settings,
    )
    from prefect.testing.utilities import prefect_test_harness

    # Heartbeats add about a second to every sync flow run and can only be switched off in code.
    with (
        temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}),
        prefect_test_harness(server_startup_timeout=90),
    ):
        url = PREFECT_API_URL.value()
        previous = os.environ.get("PREFECT_API_URL")
        os.environ["PREFECT_API_URL"] = url
        try:
            yield url
        finally:
            if previous is None:
                os.environ.pop("PREFECT_API_URL", None)
            else:
                os.environ["PREFECT_API_URL"] = previous

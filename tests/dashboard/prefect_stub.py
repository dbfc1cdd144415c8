"""A stand-in for Prefect's ``arun_deployment`` and a reachable "Prefect API" for dashboard tests.

Only ``prefect.deployments.arun_deployment`` (the boundary ``flows.trigger`` calls) is replaced;
the dashboard, ``flows.trigger`` and the health probe run for real.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from types import SimpleNamespace

import pytest

from core import settings as settings_module
from tests.helpers.http_server import Reply, Script, serve

__all__ = ["FakeDeployments", "fake_deployments", "reachable_prefect_api", "use_prefect_api"]


class FakeDeployments:
    """Stands in for ``prefect.deployments.arun_deployment``; remembers the runs it created."""

    def __init__(self, error: Exception | None = None) -> None:
        self.runs: list[dict[str, object]] = []
        self.error = error

    async def arun_deployment(self, name: str, **options: object) -> SimpleNamespace:
        if self.error is not None:
            raise self.error
        run_id = uuid.uuid5(uuid.NAMESPACE_URL, str(options["idempotency_key"]))
        self.runs.append({"name": name, "id": str(run_id), **options})
        return SimpleNamespace(id=run_id)


def use_prefect_api(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    monkeypatch.setenv("PREFECT_API_URL", url)
    settings_module.get_settings.cache_clear()


def reachable_prefect_api(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A reachable "Prefect API" (it answers /health) as PREFECT_API_URL."""
    script = Script()
    script.add("/api/health", Reply(200, b"true"))
    with serve(script) as base:
        use_prefect_api(monkeypatch, f"{base}/api")
        yield f"{base}/api"


def fake_deployments(monkeypatch: pytest.MonkeyPatch) -> FakeDeployments:
    """Prefect's ``arun_deployment`` replaced by a ``FakeDeployments``; no run is suspended
    (tests/flows/test_review.py resumes and cancels real suspended runs)."""
    fake = FakeDeployments()
    monkeypatch.setattr("prefect.deployments.arun_deployment", fake.arun_deployment)
    monkeypatch.setattr("flows.trigger.suspended_run", lambda job: None)
    return fake

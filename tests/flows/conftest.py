"""Every flow test runs against the session's Prefect test server (``prefect_server``)."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _server(prefect_server: str) -> str:
    return prefect_server

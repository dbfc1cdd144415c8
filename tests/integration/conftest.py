"""The production site every integration test shares (one xdist group, started once).

Skipped, with the reason shown, when PostgreSQL is not reachable.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.helpers.site import Site, production_site


@pytest.fixture(scope="session")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """``packshot up --profile production`` with two workers, PostgreSQL and moto S3.

    One flow run at a time per worker: two at once on this machine's two cores, as a worker
    per machine with ``--limit`` ≈ cores would run.
    """
    root = tmp_path_factory.mktemp("site")
    with production_site(root, workers=2, env={"PACKSHOT_WORKER_LIMIT": "1"}) as running:
        yield running

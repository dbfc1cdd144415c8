"""The production sites of the integration tests: one per test module, stopped when it ends.

Two sites, so the CPU-bound scale test and the mostly waiting fault tests (heartbeats, restarts)
run side by side on the two xdist workers (``make test`` hands out whole files, these first). Both are
skipped, with the reason shown, when PostgreSQL is not reachable.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.helpers.site import Site, production_site

# One flow run at a time per worker: two at once on this machine's two cores, as one worker
# per machine with ``--limit`` ≈ cores would run.
_ONE_RUN_PER_WORKER = {"PACKSHOT_WORKER_LIMIT": "1"}


@pytest.fixture(scope="module")
def scale_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """``packshot up --profile production`` with two workers, PostgreSQL and moto S3."""
    root = tmp_path_factory.mktemp("scale-site")
    with production_site(root, workers=2, env=_ONE_RUN_PER_WORKER) as running:
        yield running


@pytest.fixture(scope="module")
def fault_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """The same set-up, for the fault tests (which stop and kill parts of it)."""
    root = tmp_path_factory.mktemp("fault-site")
    with production_site(root, workers=2, env=_ONE_RUN_PER_WORKER) as running:
        yield running

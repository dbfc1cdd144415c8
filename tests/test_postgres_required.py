"""A PostgreSQL-backed test that cannot reach its server says why, and fails when CI requires it.

Runs one real test of the suite (the outbox on PostgreSQL, through the ``db_url`` fixture) in a
child pytest, with ``PACKSHOT_TEST_PG_URL`` pointing at a loopback port nobody listens on.
"""

from __future__ import annotations

from pathlib import Path

# The children run in this process, and pytester forgets the modules a run imported: import
# here what they load (the target and the driver), so no module is ever loaded twice (numpy
# refuses it; a second psycopg would raise errors the first one's callers do not catch).
import psycopg  # noqa: F401
import pytest

import tests.webhook.conftest
import tests.webhook.test_outbox  # noqa: F401
from tests.helpers.ports import free_port

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parents[1]
TARGET = "tests/webhook/test_outbox.py::test_enqueue_inserts_once_and_marks_the_job_waiting"


def _run(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, **env: str) -> tuple:
    port = free_port()
    monkeypatch.setenv(
        "PACKSHOT_TEST_PG_URL", f"postgresql://postgres:s3cret@127.0.0.1:{port}/postgres"
    )
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    result = pytester.runpytest(
        str(ROOT / f"{TARGET}[postgres]"), "-p", "no:randomly", "-p", "no:cacheprovider", "-rsE"
    )
    return result, port, result.stdout.str() + result.stderr.str()


def test_an_unreachable_server_skips_with_the_cause(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PACKSHOT_REQUIRE_PG", raising=False)
    result, port, output = _run(pytester, monkeypatch)
    result.assert_outcomes(skipped=1)
    assert (
        f"PostgreSQL unavailable at postgresql://postgres:***@127.0.0.1:{port}/postgres" in output
    )
    assert "OperationalError" in output and "Connection refused" in output
    assert "s3cret" not in output


def test_an_unreachable_server_fails_when_postgres_is_required(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    result, port, output = _run(pytester, monkeypatch, PACKSHOT_REQUIRE_PG="1")
    result.assert_outcomes(errors=1)  # the db_url fixture fails, so the test errors in setup
    assert (
        f"PostgreSQL unavailable at postgresql://postgres:***@127.0.0.1:{port}/postgres" in output
    )
    assert "Connection refused" in output and "PACKSHOT_REQUIRE_PG=1" in output
    assert "s3cret" not in output

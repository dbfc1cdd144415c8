"""What every child of the stack inherits: Prefect's client rides out a server answering 500;
the worker's poll."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from core.settings import Settings
from deployments.stack import stack_env
from tests.helpers.http_server import Reply, Script, serve

# The first call a flow-run process makes through Prefect's client, as a child of the stack.
_CALL = (
    "from prefect.client.orchestration import get_client\n"
    "with get_client(sync_client=True) as client:\n"
    "    print(client.api_version())\n"
)
_JSON = {"Content-Type": "application/json"}


@pytest.mark.parametrize("retry_500", [True, False], ids=["stack env", "Prefect's default"])
def test_a_server_answering_500_is_retried_by_the_stacks_children(
    tmp_path: Path, retry_500: bool
) -> None:
    # A Prefect server whose database restarts: 500 to the first call, then the answer.
    script = Script()
    script.add(
        "/api/admin/version",
        Reply(500, b'{"exception_message": "Internal Server Error"}', _JSON),
        Reply(200, b'"0.8.4"', _JSON),
    )
    with serve(script) as base:
        env = stack_env(Settings(home=tmp_path / "home"), f"{base}/api")
        if not retry_500:
            env.pop("PREFECT_CLIENT_RETRY_EXTRA_CODES")
        done = subprocess.run(
            [sys.executable, "-c", _CALL], env=env, capture_output=True, text=True, timeout=120
        )
    if retry_500:
        assert done.returncode == 0, done.stderr[-2000:]
        assert done.stdout.strip() == "0.8.4"
        assert script.hits["/api/admin/version"] == 2
    else:  # the test can fail: without the setting the first 500 ends the call
        assert done.returncode != 0
        assert "500 Internal Server Error" in done.stderr
        assert script.hits["/api/admin/version"] == 1


@pytest.mark.parametrize(("set_here", "polls_every"), [(None, "1"), ("0.5", "0.5")])
def test_the_workers_poll_is_one_second_unless_the_operator_sets_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, set_here: str | None, polls_every: str
) -> None:
    if set_here is None:
        monkeypatch.delenv("PREFECT_WORKER_QUERY_SECONDS", raising=False)
    else:
        monkeypatch.setenv("PREFECT_WORKER_QUERY_SECONDS", set_here)
    env = stack_env(Settings(home=tmp_path / "home"), "http://127.0.0.1:9/api")
    assert env["PREFECT_WORKER_QUERY_SECONDS"] == polls_every

"""What every child of the stack inherits: Prefect's client rides out a server answering 500."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from core.settings import Settings
from deployments.stack import stack_env

# The first call a flow-run process makes through Prefect's client, as a child of the stack.
_CALL = (
    "from prefect.client.orchestration import get_client\n"
    "with get_client(sync_client=True) as client:\n"
    "    print(client.api_version())\n"
)


class _RestartingServer(BaseHTTPRequestHandler):
    """Answers 500 (a Prefect server whose database restarts) to the first request, then 200."""

    calls: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        self.calls.append(self.path)
        if len(self.calls) == 1:
            self.send_response(500)
            body = b'{"exception_message": "Internal Server Error"}'
        else:
            self.send_response(200)
            body = json.dumps("0.8.4").encode()
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        return


@pytest.fixture
def restarting_api() -> Iterator[str]:
    _RestartingServer.calls = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _RestartingServer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/api"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("retry_500", [True, False], ids=["stack env", "Prefect's default"])
def test_a_server_answering_500_is_retried_by_the_stacks_children(
    tmp_path: Path, restarting_api: str, retry_500: bool
) -> None:
    env = stack_env(Settings(home=tmp_path / "home"), restarting_api)
    if not retry_500:
        env.pop("PREFECT_CLIENT_RETRY_EXTRA_CODES")
    done = subprocess.run(
        [sys.executable, "-c", _CALL], env=env, capture_output=True, text=True, timeout=120
    )
    if retry_500:
        assert done.returncode == 0, done.stderr[-2000:]
        assert done.stdout.strip() == "0.8.4"
        assert _RestartingServer.calls == ["/api/admin/version"] * 2
    else:  # the test can fail: without the setting the first 500 ends the call
        assert done.returncode != 0
        assert "500 Internal Server Error" in done.stderr
        assert _RestartingServer.calls == ["/api/admin/version"]

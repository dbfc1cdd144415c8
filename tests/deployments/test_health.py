"""The health wait shared by the stack's services and the background Prefect server."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from deployments.health import answers_ok, wait_until_ok
from tests.helpers.ports import free_port


@contextmanager
def _service(failures: int) -> Iterator[tuple[str, list[str]]]:
    """A loopback service that answers 503 ``failures`` times, then 200; yields its URL and
    the paths it was asked for."""
    asked: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            asked.append(self.path)
            self.send_response(503 if len(asked) <= failures else 200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *_args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/health", asked
    finally:
        server.shutdown()
        server.server_close()


def test_the_wait_polls_until_the_first_200() -> None:
    with _service(failures=2) as (url, asked):
        waited = wait_until_ok(url, 10, interval=0.01)
    assert asked == ["/health"] * 3
    assert 0 < waited < 10


def test_a_service_that_exited_ends_the_wait_at_once_and_is_named() -> None:
    calls: list[bool] = []

    def alive() -> bool:
        calls.append(True)
        return len(calls) < 2

    with _service(failures=100) as (url, asked), pytest.raises(RuntimeError) as raised:
        wait_until_ok(url, 60, name="webhook", alive=alive, interval=0.01)
    assert str(raised.value) == "webhook exited before it was ready"
    assert len(asked) == 2  # stopped as soon as the process was gone, not after 60 s


def test_no_answer_in_time_is_a_timeout_naming_the_url() -> None:
    url = f"http://127.0.0.1:{free_port()}/health"  # nothing listens
    with pytest.raises(TimeoutError, match=r"127\.0\.0\.1:\d+/health not ready after 0 s"):
        wait_until_ok(url, 0.2, interval=0.05, request_timeout=0.2)


def test_only_a_200_is_an_answer() -> None:
    with _service(failures=1) as (url, _asked):
        assert not answers_ok(url)  # 503
        assert answers_ok(url)
    assert not answers_ok(url, timeout=0.2)  # closed

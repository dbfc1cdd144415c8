"""The webhook served for real: uvicorn on a free loopback port in a thread, signed deliveries.

Tests that need Prefect use the session's test server (``prefect_server``) and a real
``process-image/default`` deployment on it, without a worker: its runs stay Scheduled.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from core.settings import Settings
from webhook.app import create_app
from webhook.security import sign

SECRET = "test-webhook-secret-7f3a"
URL_PATH = "/api/webhooks/3jms/images"


def sha(n: int) -> str:
    """A distinct, valid sha256 for image ``n``."""
    return f"{n:064x}"


def event(n: int = 1, **fields: Any) -> dict[str, Any]:
    """A valid delivery for image ``n``; ``fields`` override or add."""
    doc: dict[str, Any] = {
        "sku": f"SKU-{n}",
        "imageUrl": f"https://cdn.3jms.example/media/{n}.jpg?token=very-secret-token",
        "sha256": sha(n),
    }
    doc.update(fields)
    return doc


def signed_headers(body: bytes, *, secret: str = SECRET, timestamp: int | None = None) -> dict:
    return {"X-3JMS-Signature": sign(secret, body, timestamp=timestamp)}


def encode(doc: Any) -> bytes:
    return json.dumps(doc).encode()


@dataclass
class LiveApp:
    """A running app: its base URL, the FastAPI object (state, context) and its settings."""

    url: str
    app: FastAPI
    settings: Settings
    client: httpx.Client

    def post(self, doc: Any, *, secret: str | None = SECRET, **kw: Any) -> httpx.Response:
        body = doc if isinstance(doc, bytes) else encode(doc)
        headers = signed_headers(body, secret=secret) if secret else {}
        headers.update(kw.pop("headers", {}))
        return self.client.post(self.url + URL_PATH, content=body, headers=headers, **kw)

    def get(self, path: str) -> httpx.Response:
        return self.client.get(self.url + path)

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            time.sleep(0.05)
        raise AssertionError(f"condition not met within {timeout} s")

    def backlog(self) -> int:
        return int(self.get("/healthz").json()["backlog"])


@contextmanager
def serve_app(settings: Settings) -> Iterator[LiveApp]:
    """Run ``create_app(settings)`` under uvicorn in a thread (lifespan on) until the block ends."""
    app = create_app(settings)
    server = uvicorn.Server(
        uvicorn.Config(app, lifespan="on", log_level="warning", access_log=False)
    )
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the webhook app did not start")
        time.sleep(0.02)
    try:
        with httpx.Client(timeout=30) as client:
            yield LiveApp(f"http://127.0.0.1:{port}", app, settings, client)
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()


def make_settings(**overrides: Any) -> Settings:
    """Settings of the test's own PACKSHOT_HOME, with a secret and a fast-retrying dispatcher.

    One flow run per job, as the outbox tests count runs by job id; the batch tests ask for
    batches (``dispatch_batch_max``).
    """
    values: dict[str, Any] = {
        "webhook_secret": SECRET,
        "dispatcher_enabled": False,
        "dispatch_backoff_max_s": 0.3,
        "dispatch_poll_s": 0.1,
        "dispatch_batch_max": 1,
        "dispatch_linger_s": 0.0,
    }
    values.update(overrides)
    api_url = values.pop("prefect_api_url", None)
    settings = Settings(**values)
    if api_url is not None:
        settings = settings.model_copy(update={"prefect_api_url": api_url})
    return settings


class TcpProxy:
    """A loopback TCP relay to ``target`` that can be switched on and off (Prefect up / down)."""

    def __init__(self, port: int, target: tuple[str, int]) -> None:
        self.port = port
        self.target = target
        self._server: socket.socket | None = None
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()

    def start(self) -> None:
        server = socket.socket()
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", self.port))
        server.listen(64)
        self._server = server
        threading.Thread(target=self._accept, args=(server,), daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        with self._lock:
            for conn in self._conns:
                conn.close()
            self._conns.clear()

    def _accept(self, server: socket.socket) -> None:
        while True:
            try:
                client, _ = server.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            with self._lock:
                self._conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)


@pytest.fixture(scope="session")
def deployment_id(prefect_server: str) -> uuid.UUID:
    """``process-image/default`` on the test server, no work pool: runs stay Scheduled."""

    async def create() -> uuid.UUID:
        from prefect import get_client

        async with get_client() as client:
            flow_id = await client.create_flow_from_name("process-image")
            return await client.create_deployment(
                flow_id=flow_id,
                name="default",
                entrypoint="flows/process_image.py:process_image",
                enforce_parameter_schema=False,
            )

    return asyncio.run(create())


def flow_runs_by_key(deployment: uuid.UUID, keys: set[str]) -> dict[str, list[str]]:
    """Flow runs of ``deployment`` whose idempotency key is one of ``keys``: key → run ids."""

    async def read() -> dict[str, list[str]]:
        from prefect import get_client
        from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

        found: dict[str, list[str]] = {key: [] for key in keys}
        async with get_client() as client:
            offset = 0
            while True:
                page = await client.read_flow_runs(
                    deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment])),
                    limit=200,
                    offset=offset,
                )
                for run in page:
                    if run.idempotency_key in found:
                        found[run.idempotency_key].append(str(run.id))
                if len(page) < 200:
                    return found
                offset += 200

    return asyncio.run(read())

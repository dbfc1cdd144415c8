"""A real HTTP server on loopback with scripted answers: the 3JMS CDN stand-in of the tests."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Reply:
    """One scripted answer; with ``drip`` set, the body goes out one byte per ``drip`` seconds."""

    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    drip: float = 0.0


@dataclass
class Script:
    """Answers per path: a list is consumed in order, its last entry then repeats."""

    routes: dict[str, list[Reply]] = field(default_factory=dict)
    hits: dict[str, int] = field(default_factory=dict)
    # Every request as received: its whole path (query included) and its headers.
    received: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, path: str, *replies: Reply) -> None:
        self.routes[path] = list(replies)

    def next(self, path: str) -> Reply | None:
        with self.lock:
            self.hits[path] = self.hits.get(path, 0) + 1
            replies = self.routes.get(path)
            if not replies:
                return None
            return replies.pop(0) if len(replies) > 1 else replies[0]


class _Handler(BaseHTTPRequestHandler):
    script: Script

    def do_GET(self) -> None:
        with self.script.lock:
            self.script.received.append((self.path, dict(self.headers.items())))
        reply = self.script.next(self.path.split("?", 1)[0])
        if reply is None:
            reply = Reply(404, b"not found")
        if reply.delay:
            time.sleep(reply.delay)
        try:
            self.send_response(reply.status)
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(reply.body)))
            self.end_headers()
            if not reply.drip:
                self.wfile.write(reply.body)
            for index in range(len(reply.body) if reply.drip else 0):
                self.wfile.write(reply.body[index : index + 1])
                time.sleep(reply.drip)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextmanager
def serve(script: Script) -> Iterator[str]:
    """Serve ``script`` on a free loopback port; yields the base URL."""
    handler = type("Handler", (_Handler,), {"script": script})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()

"""A loopback HTTP proxy in front of moto's S3 server that can answer like a struggling S3.

While a fault window is open, every request gets what S3 sends when it is overloaded: ``503
SlowDown`` and ``500 InternalError``, alternately, with S3's XML error body. Outside a window
requests pass through unchanged (the body and headers byte for byte, so signatures still hold).
"""

from __future__ import annotations

import http.client
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

__all__ = ["S3FaultProxy"]

_FAULTS = (
    (503, "SlowDown", "Please reduce your request rate."),
    (500, "InternalError", "We encountered an internal error. Please try again."),
)
_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "proxy-connection", "upgrade"}


class S3FaultProxy:
    """``url`` forwards to ``upstream``; ``faults(seconds)`` opens a window of S3 errors."""

    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.faults_served = 0
        self.requests = 0
        self.puts: list[str] = []  # paths of the PUTs that reached S3
        self._until = 0.0
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def open_window(self, seconds: float) -> None:
        """Fail every request for the next ``seconds``."""
        with self._lock:
            self._until = time.monotonic() + seconds

    @contextmanager
    def faults(self, seconds: float) -> Iterator[None]:
        """A fault window of ``seconds``, waited out before the block ends."""
        self.open_window(seconds)
        yield
        time.sleep(max(0.0, self._until - time.monotonic()))

    def _next_fault(self) -> tuple[int, str, str] | None:
        with self._lock:
            self.requests += 1
            if time.monotonic() >= self._until:
                return None
            self.faults_served += 1
            return _FAULTS[self.faults_served % len(_FAULTS)]

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def _body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    chunks = []
                    while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
                        chunks.append(self.rfile.read(size))
                        self.rfile.readline()
                    while self.rfile.readline().strip():  # trailers
                        pass
                    return b"".join(chunks)
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def _handle(self) -> None:
                body = self._body()
                fault = proxy._next_fault()
                if fault is not None:
                    self._fault(*fault)
                    return
                if self.command == "PUT":
                    with proxy._lock:
                        proxy.puts.append(self.path.split("?", 1)[0])
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
                if self.headers.get("Transfer-Encoding"):
                    headers["Content-Length"] = str(len(body))
                conn = http.client.HTTPConnection(*proxy.upstream, timeout=60)
                try:
                    conn.request(self.command, self.path, body=body or None, headers=headers)
                    answer = conn.getresponse()
                    data = answer.read()
                    self.send_response(answer.status, answer.reason)
                    # A HEAD answer keeps the object's length; others carry what was read.
                    own_length = self.command != "HEAD"
                    for name, value in answer.getheaders():
                        lower = name.lower()
                        if lower not in _HOP_BY_HOP and not (
                            own_length and lower == "content-length"
                        ):
                            self.send_header(name, value)
                    if own_length:
                        self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(data)
                finally:
                    conn.close()

            def _fault(self, status: int, code: str, message: str) -> None:
                request_id = uuid.uuid4().hex[:16].upper()
                xml = (
                    '<?xml version="1.0" encoding="UTF-8"?>\n'
                    f"<Error><Code>{code}</Code><Message>{message}</Message>"
                    f"<RequestId>{request_id}</RequestId><HostId>fault-proxy</HostId></Error>"
                ).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/xml")
                self.send_header("x-amz-request-id", request_id)
                self.send_header("Content-Length", str(len(xml)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(xml)

            # http.server dispatches on these names.
            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle  # noqa: N815

        return Handler

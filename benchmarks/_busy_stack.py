"""``packshot up`` in a scratch home, with a loopback CDN of one real photo: a stack to keep busy.

Used by ``benchmarks/webhook.py --with-stack``: deliveries of that photo under distinct SKUs are
real jobs, so the worker is busy with the pipeline while the webhook's answers are measured.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from deployments.health import wait_until_ok
from tests.helpers.ports import free_ports

ROOT = Path(__file__).resolve().parents[1]
PHOTO = ROOT / "deployments" / "samples" / "sports_car.jpg"

__all__ = ["BusyStack", "busy_stack", "wait_healthy"]


@dataclass(frozen=True)
class BusyStack:
    """Where the running stack answers, and the photo its deliveries name."""

    webhook: str
    photo_url: str
    sha256: str
    home: Path


def _cdn(data: bytes) -> tuple[ThreadingHTTPServer, str]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "image/jpeg")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


@contextlib.contextmanager
def busy_stack(secret: str, worker_nice: int) -> Iterator[BusyStack]:
    """``packshot up --services prefect,worker,webhook`` until the block ends, then stopped."""
    data = PHOTO.read_bytes()
    home = Path(tempfile.mkdtemp(prefix="bench-stack-"))
    cdn, cdn_url = _cdn(data)
    port, prefect_port = free_ports(2)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PACKSHOT_", "PREFECT_"))}
    env |= {
        "PACKSHOT_HOME": str(home),
        "PACKSHOT_WEBHOOK_SECRET": secret,
        "PACKSHOT_WEBHOOK_PORT": str(port),
        "PACKSHOT_PREFECT_PORT": str(prefect_port),
        "PACKSHOT_ALLOW_PRIVATE_SOURCES": "true",
        "PACKSHOT_WORKER_NICE": str(worker_nice),
        "PACKSHOT_STOP_GRACE_S": "5",
    }
    log = (home / "up.log").open("wb")
    command = [str(Path(sys.executable).with_name("packshot")), "up"]
    process = subprocess.Popen(
        [*command, "--services", "prefect,worker,webhook"],
        cwd=home,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    webhook = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(webhook, process, home / "up.log", timeout=300)
        yield BusyStack(webhook, f"{cdn_url}/media", hashlib.sha256(data).hexdigest(), home)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=120)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        log.close()
        cdn.shutdown()
        shutil.rmtree(home, ignore_errors=True)


def wait_healthy(url: str, process: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    """Poll ``url``/healthz until it answers 200; fail with ``log``'s tail if ``process`` exits.

    Raises:
        RuntimeError: ``process`` exited first.
        TimeoutError: no answer within ``timeout`` seconds.
    """
    try:
        wait_until_ok(
            f"{url}/healthz",
            timeout,
            alive=lambda: process.poll() is None,
            interval=0.2,
            request_timeout=1.0,
        )
    except RuntimeError as exc:
        raise RuntimeError(f"{process.args!r} exited: {log.read_text()[-2000:]}") from exc

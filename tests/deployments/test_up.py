"""`packshot up` as an operator runs it: a subprocess with its own home, ports and log.

One stack for the module (starting one takes a minute on a busy machine). The first test checks
what guards its Prefect API; the second processes a photo through the webhook, then stops the
stack with Ctrl-C (SIGINT) while a second photo is still downloading, and checks that the run
was cancelled in Prefect and that no process the stack started is left.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import sqlite3
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TypeVar

import httpx
import pytest

from core.signing import SIGNATURE_HEADER, sign
from tests.helpers.images import jpeg_bytes, varied_product
from tests.helpers.ports import free_ports

# Start-up alone takes 1-3 minutes on a busy 2-core machine.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

SECRET = "packshot-up-test-secret-0042"
GRACE_S = 10
PHOTO = jpeg_bytes(varied_product(3))
T = TypeVar("T")


@dataclass
class Up:
    """The running `packshot up` and where to reach it."""

    process: subprocess.Popen[bytes]
    home: Path
    log: Path
    api: str
    ui: str
    webhook: str

    @property
    def auth(self) -> str:
        return (self.home / "prefect-api-auth").read_text().strip()

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def _until(check: Callable[[], T | None], timeout: float, what: Callable[[], str]) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found is not None:
            return found
        time.sleep(0.5)
    raise AssertionError(f"{what()} after {timeout:.0f} s")


def _environ(pid: str) -> dict[str, str]:
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return {}
    pairs = (item.partition(b"=") for item in raw.split(b"\0") if item)
    return {k.decode(errors="replace"): v.decode(errors="replace") for k, _, v in pairs}


def _start_time(pid: int) -> str | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return None if fields[0] == "Z" else fields[19]


def stack_processes(home: Path) -> dict[int, dict[str, str]]:
    """Live processes whose environment names ``home``: everything the stack started."""
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            env = _environ(entry.name)
            if env.get("PACKSHOT_HOME") == str(home) and _start_time(int(entry.name)):
                found[int(entry.name)] = env
    return found


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Up]:
    root = tmp_path_factory.mktemp("packshot-up")
    home = root / "home"
    ports = dict(zip(("PREFECT", "WEBHOOK", "DASHBOARD"), free_ports(3), strict=True))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PACKSHOT_", "PREFECT_"))}
    env |= {f"PACKSHOT_{name}_PORT": str(port) for name, port in ports.items()}
    env |= {
        "PACKSHOT_HOME": str(home),
        "PACKSHOT_WEBHOOK_SECRET": SECRET,
        "PACKSHOT_ALLOW_PRIVATE_SOURCES": "true",  # the CDN stand-in is on loopback
        "PACKSHOT_MASTER_SIZE": "1200",
        "PACKSHOT_STOP_GRACE_S": str(GRACE_S),
    }
    log = root / "up.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [str(Path(sys.executable).with_name("packshot")), "up"],
            cwd=root,
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    base = "http://127.0.0.1"
    running = Up(
        process,
        home,
        log,
        api=f"{base}:{ports['PREFECT']}/api",
        ui=f"{base}:{ports['PREFECT']}",
        webhook=f"{base}:{ports['WEBHOOK']}",
    )

    def ready() -> bool | None:
        assert process.poll() is None, f"packshot up exited:\n{running.output()[-3000:]}"
        try:
            return httpx.get(f"{running.webhook}/healthz", timeout=2).status_code == 200 or None
        except httpx.HTTPError:
            return None

    try:
        _until(ready, 600, lambda: f"webhook not ready:\n{running.output()[-3000:]}")
        yield running
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=120)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
        for pid in stack_processes(home):  # a failed test must not leave a stack behind
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def test_the_prefect_api_wants_credentials_and_no_job_variable_picks_the_command(up: Up) -> None:
    auth_file = up.home / "prefect-api-auth"
    assert stat.S_IMODE(auth_file.stat().st_mode) == 0o600
    user, _, password = up.auth.partition(":")
    credentials = (user, password)
    deployment = f"{up.api}/deployments/name/process-image/default"
    assert httpx.get(deployment).status_code == 401
    answer = httpx.get(deployment, auth=credentials)
    assert answer.status_code == 200
    create = f"{up.api}/deployments/{answer.json()['id']}/create_flow_run"
    # The attack of the issue, without credentials: refused (CSRF first, then authentication).
    attack = {"job_variables": {"command": "true"}, "enforce_parameter_schema": False}
    assert httpx.post(create, json=attack).status_code == 403
    csrf = _csrf_headers(up, credentials)
    assert httpx.post(create, json=attack, headers=csrf).status_code == 401
    # With credentials, no job variable may choose what a worker runs, where, or with what.
    for name, value in (("command", "true"), ("working_dir", "/"), ("env", {"A": "b"})):
        body = {"job_variables": {name: value}, "enforce_parameter_schema": False}
        refused = httpx.post(create, json=body, headers=csrf, auth=credentials)
        assert refused.status_code == 422, refused.text
        assert f"'{name}' was unexpected" in refused.text

    evil = _preflight(up, "http://evil.example")
    assert evil.status_code == 400 and "access-control-allow-origin" not in evil.headers
    own = _preflight(up, up.ui)
    assert own.headers["access-control-allow-origin"] == up.ui

    assert up.auth not in up.output()
    for pid in stack_processes(up.home):
        assert up.auth not in Path(f"/proc/{pid}/cmdline").read_text(errors="replace")


def _csrf_headers(up: Up, credentials: tuple[str, str]) -> dict[str, str]:
    """The CSRF token headers Prefect's clients send (fetched with the credentials)."""
    token = httpx.get(
        f"{up.api}/csrf-token", params={"client": "packshot-test"}, auth=credentials
    ).json()["token"]
    return {"Prefect-Csrf-Token": token, "Prefect-Csrf-Client": "packshot-test"}


def _preflight(up: Up, origin: str) -> httpx.Response:
    return httpx.options(
        f"{up.api}/deployments/filter",
        headers={"Origin": origin, "Access-Control-Request-Method": "POST"},
    )


class _Cdn(BaseHTTPRequestHandler):
    """``/photo.jpg`` at once; ``/slow.jpg`` 64 KiB every half second (it would take minutes)."""

    slow_started = threading.Event()

    def do_GET(self) -> None:
        slow = self.path == "/slow.jpg"
        size = 20_000_000 if slow else len(PHOTO)
        self.send_response(200)
        self.send_header("Content-Length", str(size))
        self.end_headers()
        if not slow:
            self.wfile.write(PHOTO)
            return
        self.slow_started.set()
        try:
            for _ in range(size // 65_536):
                self.wfile.write(b"\0" * 65_536)
                time.sleep(0.5)
        except OSError:  # the download was stopped
            return

    def log_message(self, format: str, *args: object) -> None:
        pass


def _deliver(up: Up, sku: str, url: str, sha256: str) -> str:
    body = json.dumps({"sku": sku, "imageUrl": url, "sha256": sha256, "theme": "default"})
    answer = httpx.post(
        f"{up.webhook}/api/webhooks/3jms/images",
        content=body.encode(),
        headers={"content-type": "application/json", SIGNATURE_HEADER: sign(SECRET, body.encode())},
    )
    assert answer.status_code == 202, answer.text
    return str(answer.json()["jobId"])


def _job(up: Up, job_id: str) -> dict[str, object]:
    return dict(httpx.get(f"{up.webhook}/api/jobs/{job_id}", timeout=10).json())


def test_packshot_up_processes_a_photo_and_a_stop_mid_run_leaves_nothing(up: Up) -> None:
    cdn = ThreadingHTTPServer(("127.0.0.1", 0), _Cdn)
    cdn.daemon_threads = True
    threading.Thread(target=cdn.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{cdn.server_address[1]}"
    try:
        done = _deliver(up, "UP-1", f"{base}/photo.jpg", hashlib.sha256(PHOTO).hexdigest())

        def finished() -> str | None:
            status = str(_job(up, done)["status"])
            return status if status in ("DONE", "FAILED", "NEEDS_REVIEW") else None

        # The stack runs with the product's defaults: the quality gate may hold the photo,
        # which is the pipeline done too (every file made, nothing published yet).
        ended = _until(finished, 600, lambda: f"job {done} not finished")
        assert ended in ("DONE", "NEEDS_REVIEW"), _job(up, done)

        slow = _deliver(up, "UP-2", f"{base}/slow.jpg", "ab" * 32)
        assert _Cdn.slow_started.wait(timeout=300), "the slow photo was never requested"
        flow_run_id = str(_job(up, slow)["flowRunId"])
        started = stack_processes(up.home)
        assert any(e.get("PREFECT__FLOW_RUN_ID") == flow_run_id for e in started.values())
        before = {pid: _start_time(pid) for pid in started}

        up.process.send_signal(signal.SIGINT)
        # Bounded: the grace period plus stopping each service (a hang fails here).
        assert up.process.wait(timeout=GRACE_S + 120) == 0
    finally:
        cdn.shutdown()
        cdn.server_close()

    with sqlite3.connect(up.home / "prefect" / "prefect.db") as db:
        state = db.execute("select state_type from flow_run where id = ?", (flow_run_id,))
        assert state.fetchone() == ("CANCELLED",)
    assert [pid for pid, start in before.items() if _start_time(pid) == start] == []
    assert stack_processes(up.home) == {}
    assert up.auth not in up.output()

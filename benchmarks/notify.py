"""Outbound events: how many events/s the sender delivers, and how soon after a status change.

A fast receiver runs in a child process on loopback (HTTP/1.1 keep-alive, answers 204 at once,
notes when it answered each event). The sender is ``core.events.sender.Sender`` with the default
settings (8 deliveries in flight, batches of 64, 0.2 s poll), on SQLite in a temporary
PACKSHOT_HOME (or ``--database-url``, e.g. a throwaway PostgreSQL database).

1. Throughput: ``--events`` jobs are finished first (their events wait in the outbox), then the
   sender is started and timed until every event is delivered: events/s.
2. Latency: the sender runs while jobs finish at ``--rate`` per second for ``--duration``
   seconds; for each job, the time from the commit of its status change (DONE) to the moment
   the receiver sent its 2xx: p50/p99.

    .venv/bin/python benchmarks/notify.py [--events 2000] [--rate 50] [--duration 10]

Loopback only; bounded in count (≤ 20,000 events per phase).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import tempfile
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from multiprocessing.connection import Connection
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT)]

MAX_EVENTS = 20_000


def _receiver(conn: Connection) -> None:
    """Child process: answer every POST with 204; on request, hand back {jobId: answered at}."""
    answered: dict[str, float] = {}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            self.send_response(204)
            self.send_header("Content-Length", "0")
            self.end_headers()
            job = json.loads(body).get("job") or {}
            answered.setdefault(str(job.get("jobId")), time.time())

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    conn.send(server.server_address[1])
    while conn.recv() == "report":
        conn.send(dict(answered))
        answered.clear()


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def _finish_jobs(url: str, count: int, tag: str) -> dict[str, float]:
    """Create and finish ``count`` jobs (one transaction each); {job id: commit time}."""
    from core import jobs
    from core.db import session_scope
    from core.schemas import ImageJobSpec

    committed: dict[str, float] = {}
    for n in range(count):
        spec = ImageJobSpec(
            sku=f"B-{tag}-{n}", image_url="https://cdn.example/a.jpg", sha256=f"{n:064x}"
        )
        with session_scope(url) as s:
            job, _ = jobs.get_or_create_job(s, spec=spec)
            job_id = job.id
        with session_scope(url) as s:
            jobs.finish_job(s, job_id=job_id, manifest_key=f"manifests/{spec.sku}/x.json")
        committed[str(job_id)] = time.time()
    return committed


def _open(url: str) -> int:
    from core.db import session_scope
    from core.events import outbox

    with session_scope(url) as s:
        return outbox.backlog(s).pending


def _throughput(settings: object, url: str, events: int) -> tuple[float, int]:
    from core.events.sender import Sender

    _finish_jobs(url, events, "t" + uuid.uuid4().hex[:6])
    sender = Sender(settings)  # type: ignore[arg-type]
    started = time.perf_counter()
    delivered = 0
    while delivered < events:
        sent = sender.run_once()
        if not sent and _open(url) == 0:
            break
        delivered += sent
    elapsed = time.perf_counter() - started
    sender.close()
    return events / elapsed, delivered


def _latency(settings: object, url: str, rate: float, duration: float) -> dict[str, float]:
    from core.events.sender import Sender

    sender = Sender(settings)  # type: ignore[arg-type]
    stop = threading.Event()
    thread = threading.Thread(target=sender.run, args=(stop,), daemon=True)
    thread.start()
    committed: dict[str, float] = {}
    tag = "l" + uuid.uuid4().hex[:6]
    count = min(int(rate * duration), MAX_EVENTS)
    begin = time.perf_counter()
    for n in range(count):
        time.sleep(max(0.0, begin + n / rate - time.perf_counter()))
        committed.update(_finish_jobs(url, 1, f"{tag}-{n}"))
    while _open(url):
        time.sleep(0.05)
    stop.set()
    thread.join()
    sender.close()
    return committed


def _parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--events", type=int, default=2000, help="events for the throughput run")
    parser.add_argument("--rate", type=float, default=50.0, help="status changes per second")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of status changes")
    parser.add_argument("--database-url", default=None, help="default: SQLite in a temp home")
    args = parser.parse_args()
    if not 1 <= args.events <= MAX_EVENTS or args.rate * args.duration > MAX_EVENTS:
        parser.error(f"at most {MAX_EVENTS} events per phase")
    return args


def main() -> None:
    args = _parse()
    parent, child = multiprocessing.Pipe()
    receiver = multiprocessing.Process(target=_receiver, args=(child,), daemon=True)
    receiver.start()
    port = parent.recv()
    home = Path(tempfile.mkdtemp(prefix="bench-notify-"))
    os.environ.update(
        PACKSHOT_HOME=str(home),
        PACKSHOT_NOTIFY_URL=f"http://127.0.0.1:{port}/events",
        PACKSHOT_NOTIFY_SECRET="bench-notify-secret-91c2",
        PACKSHOT_NOTIFY_ALLOW_PRIVATE="true",
    )
    if args.database_url:
        os.environ["PACKSHOT_DATABASE_URL"] = args.database_url
    from core.db import upgrade_schema
    from core.settings import get_settings

    settings = get_settings()
    url = settings.database_url
    upgrade_schema(url)
    print(
        f"receiver http://127.0.0.1:{port}, database {url.split('://')[0]}, {os.cpu_count()} cpus"
    )
    rps, delivered = _throughput(settings, url, args.events)
    parent.send("report")
    parent.recv()
    print(f"throughput: {delivered} events delivered at {rps:.0f} events/s")
    committed = _latency(settings, url, args.rate, args.duration)
    parent.send("report")
    answered: dict[str, float] = parent.recv()
    parent.send("stop")
    lat = [(answered[j] - t) * 1000 for j, t in committed.items() if j in answered]
    missing = len(committed) - len(lat)
    print(
        f"latency status change → 2xx at {args.rate:g}/s: p50 {_percentile(lat, 50):.0f} ms  "
        f"p99 {_percentile(lat, 99):.0f} ms  max {max(lat, default=float('nan')):.0f} ms "
        f"({len(lat)} events, {missing} missing)"
    )
    print(
        f"result: events_per_s={rps:.0f} p50_ms={_percentile(lat, 50):.0f} "
        f"p99_ms={_percentile(lat, 99):.0f} rate={args.rate:g} events={args.events} "
        f"missing={missing}"
    )


if __name__ == "__main__":
    main()

"""Webhook throughput and latency: signed deliveries of distinct images at a fixed rate.

Starts the real app the way ``packshot up`` does (``uvicorn webhook.app:create_app --factory``,
one process, SQLite in a temporary PACKSHOT_HOME, signatures on, INFO logs, no access log)
on a free loopback port, and drives it open-loop at ``--rate`` requests/s for ``--duration``
seconds from an async httpx client in this process. Reported: sustained accepted requests/s
and p50/p95/p99 latency of the 202 answers (send → full response), the server's CPU per request.

By default the dispatcher inside the app points at a closed port (no Prefect): the request path
is measured alone while the dispatcher keeps failing and backing off, as it would with Prefect
down. ``--with-prefect`` starts a real local Prefect server with a ``process-image/default``
deployment (no worker; runs stay Scheduled) and also reports how fast the backlog drains.

    .venv/bin/python benchmarks/webhook.py [--rate 200] [--duration 15] [--with-prefect]
    .venv/bin/python benchmarks/webhook.py --with-stack [--worker-nice 10]

``--with-stack`` measures the webhook inside ``packshot up`` (Prefect, a worker, the webhook)
while the worker processes real jobs: every delivery names the same sample photo under its own
SKU, served from a loopback CDN, so the burst itself keeps the worker busy.

Loopback only; bounded in count (rate × duration ≤ 100,000) and time.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# This file is called webhook.py: keep its folder behind the repo root, or it would shadow the
# `webhook` package it measures.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "benchmarks"]
sys.path[:0] = [str(ROOT)]
sys.path.append(str(ROOT / "benchmarks"))

from _busy_stack import wait_healthy  # noqa: E402

from core.heap import freeze_startup_heap  # noqa: E402
from tests.helpers.ports import free_port  # noqa: E402
from webhook.security import sign  # noqa: E402

SECRET = "bench-webhook-secret-5e1d"
PATH = "/api/webhooks/3jms/images"
MAX_REQUESTS = 100_000


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def _webhook(
    home: Path, prefect_api: str, *, access_log: bool, dispatcher: bool = True
) -> Iterator[tuple[str, int]]:
    port = free_port()
    env = {
        **os.environ,
        "PACKSHOT_DISPATCHER_ENABLED": "true" if dispatcher else "false",
        "PACKSHOT_HOME": str(home),
        "PACKSHOT_WEBHOOK_SECRET": SECRET,
        "PREFECT_API_URL": prefect_api,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PYTHONPATH": str(ROOT),
    }
    cmd = [
        str(Path(sys.executable).with_name("uvicorn")),
        "webhook.app:create_app",
        "--factory",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    if not access_log:
        cmd.append("--no-access-log")
    log = (home / "webhook.log").open("w")
    proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, proc, home / "webhook.log", timeout=90)
        yield url, proc.pid
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def _delivery(run: str, n: int, photo: tuple[str, str] | None = None) -> bytes:
    """Delivery ``n``: a made-up image, or ``photo`` (its URL prefix and sha256) as a real job."""
    if photo is not None:
        url, digest = f"{photo[0]}/{run}-{n}.jpg", photo[1]
    else:
        url = f"https://cdn.3jms.example/media/{run}/{n}.jpg?token=abc"
        digest = hashlib.sha256(f"{run}:{n}".encode()).hexdigest()
    doc = {"sku": f"BENCH-{run}-{n}", "imageUrl": url, "sha256": digest, "theme": "default"}
    return json.dumps(doc).encode()


@dataclass
class Load:
    latencies_ms: list[float] = field(default_factory=list)
    service_ms: list[float] = field(default_factory=list)
    statuses: dict[str, int] = field(default_factory=dict)
    first_send: float = 0.0
    last_done: float = 0.0


async def _exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes
) -> int:
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    await reader.readexactly(length)
    return status


async def _drive(
    url: str,
    run: str,
    rate: float,
    count: int,
    *,
    connections: int,
    start_n: int = 0,
    photo: tuple[str, str] | None = None,
) -> Load:
    """Open loop: request i is due at t0 + i/rate whatever the earlier ones are doing.

    A small HTTP/1.1 keep-alive client (``connections`` sockets) keeps the generator's own CPU
    low. Latency counts from the moment a request was due, so time spent waiting for a free
    connection is included (no coordinated omission); ``service`` counts from the send.
    """
    host, port = url.removeprefix("http://").split(":")
    bodies = [_delivery(run, start_n + i, photo) for i in range(count)]
    # This client's own full collections (75 ms measured, walking what it imported) would
    # count as the webhook's latency: what exists now is left out of them.
    freeze_startup_heap()
    queue: asyncio.Queue[tuple[int, float] | None] = asyncio.Queue()
    load = Load()

    async def connection() -> None:
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            while (item := await queue.get()) is not None:
                i, due = item
                body = bodies[i]
                request = (
                    f"POST {PATH} HTTP/1.1\r\nHost: {host}\r\n"
                    "Content-Type: application/json\r\n"
                    f"X-3JMS-Signature: {sign(SECRET, body)}\r\n"
                    f"Content-Length: {len(body)}\r\n\r\n"
                ).encode() + body
                sent = time.perf_counter()
                try:
                    key = str(await asyncio.wait_for(_exchange(reader, writer, request), 30))
                except (OSError, asyncio.IncompleteReadError, TimeoutError) as exc:
                    key = type(exc).__name__
                    writer.close()
                    reader, writer = await asyncio.open_connection(host, int(port))
                done = time.perf_counter()
                load.statuses[key] = load.statuses.get(key, 0) + 1
                if key == "202":
                    load.latencies_ms.append((done - due) * 1000)
                    load.service_ms.append((done - sent) * 1000)
                load.last_done = max(load.last_done, done)
        finally:
            writer.close()

    workers = [asyncio.create_task(connection()) for _ in range(connections)]
    await asyncio.sleep(0.2)  # connections open
    t0 = time.perf_counter()
    load.first_send = t0
    for i in range(count):
        due = t0 + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        queue.put_nowait((i, due))
    for _ in workers:
        queue.put_nowait(None)
    await asyncio.gather(*workers)
    return load


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def _jobs(home: Path) -> tuple[int, int]:
    with sqlite3.connect(home / "packshot.db") as db:
        total = db.execute("select count(*) from job").fetchone()[0]
        pending = db.execute("select count(*) from job where dispatch_pending").fetchone()[0]
    return int(total), int(pending)


@contextlib.contextmanager
def _prefect_with_deployment() -> Iterator[str]:
    from _prefect import prefect_server

    with prefect_server() as api:

        async def deploy() -> None:
            from prefect.client.orchestration import PrefectClient

            async with PrefectClient(api) as client:
                flow_id = await client.create_flow_from_name("process-image")
                await client.create_deployment(
                    flow_id=flow_id,
                    name="default",
                    entrypoint="flows/process_image.py:process_image",
                    enforce_parameter_schema=False,
                )

        asyncio.run(deploy())
        yield api


def _machine_busy_s() -> float:
    """CPU seconds all processes of the machine have used (from /proc/stat)."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def _handler_ms(log: Path) -> list[float]:
    """The app's own time per accepted delivery (``ms=`` of its log lines)."""
    values = []
    for line in log.read_text(errors="replace").splitlines():
        if "event=delivery.created" in line and " ms=" in line:
            values.append(float(line.rsplit(" ms=", 1)[1].split()[0]))
    return values


def _parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rate", type=float, default=200.0, help="requests per second")
    parser.add_argument("--duration", type=float, default=15.0, help="seconds of load")
    parser.add_argument(
        "--warmup", type=float, default=2.0, help="seconds at the same rate before measuring"
    )
    parser.add_argument("--connections", type=int, default=32, help="keep-alive sockets")
    parser.add_argument("--with-prefect", action="store_true", help="dispatch to a real server")
    parser.add_argument(
        "--with-stack",
        action="store_true",
        help="inside `packshot up` whose worker is busy with real jobs of the same burst",
    )
    parser.add_argument(
        "--worker-nice", type=int, default=10, help="--with-stack: PACKSHOT_WORKER_NICE"
    )
    parser.add_argument(
        "--settle",
        type=float,
        default=12.0,
        help="--with-stack: seconds for the worker to get busy",
    )
    parser.add_argument("--no-dispatcher", action="store_true", help="no dispatcher at all")
    parser.add_argument(
        "--drain", type=float, default=30.0, help="--with-prefect: seconds to watch dispatch after"
    )
    parser.add_argument(
        "--access-log", action="store_true", help="uvicorn's access log on (packshot up: off)"
    )
    args = parser.parse_args()
    count = int(args.rate * args.duration)
    if not 0 < count <= MAX_REQUESTS or args.duration > 300:
        raise SystemExit(f"keep rate × duration within 1..{MAX_REQUESTS} and duration ≤ 300 s")
    return args


def _with_stack(args: argparse.Namespace) -> None:
    """The webhook inside ``packshot up`` while its worker processes the jobs it accepted."""
    from _busy_stack import busy_stack

    count, run = int(args.rate * args.duration), hashlib.sha256(os.urandom(8)).hexdigest()[:8]
    with busy_stack(SECRET, args.worker_nice) as stack:
        photo, url = (stack.photo_url, stack.sha256), stack.webhook
        # The first deliveries are real jobs: the worker starts on them, and stays busy.
        warm = int(args.rate * args.warmup)
        asyncio.run(_drive(url, run, args.rate, warm, connections=args.connections, photo=photo))
        time.sleep(args.settle)
        busy_before, started = _machine_busy_s(), time.perf_counter()
        load = asyncio.run(
            _drive(
                url, run, args.rate, count, connections=args.connections, start_n=warm, photo=photo
            )
        )
        window = time.perf_counter() - started
        busy = (_machine_busy_s() - busy_before) / window / (os.cpu_count() or 1)
        total, _ = _jobs(stack.home)
    lat, accepted = load.latencies_ms, load.statuses.get("202", 0)
    print(
        f"requests {count} at {args.rate:g}/s with the worker busy: {load.statuses}; jobs {total}"
    )
    print(
        f"latency of 202s (due → answer): p50 {_percentile(lat, 50):.1f}  "
        f"p95 {_percentile(lat, 95):.1f}  p99 {_percentile(lat, 99):.1f}  "
        f"max {max(lat, default=float('nan')):.1f} ms; machine busy {busy:.0%}"
    )
    print(
        f"result: mode=stack worker_nice={args.worker_nice} rate={args.rate:g} "
        f"p50_ms={_percentile(lat, 50):.1f} p99_ms={_percentile(lat, 99):.1f} "
        f"errors={count - accepted} machine_busy={busy:.2f}"
    )


def main() -> None:
    args = _parse()
    if args.with_stack:
        _with_stack(args)
        return
    count = int(args.rate * args.duration)
    home = Path(tempfile.mkdtemp(prefix="bench-webhook-"))
    run = hashlib.sha256(str(time.time()).encode()).hexdigest()[:8]
    prefect = (
        _prefect_with_deployment()
        if args.with_prefect
        else contextlib.nullcontext(f"http://127.0.0.1:{free_port()}/api")  # nobody listens
    )
    drain_s = dispatch_rps = None
    try:
        with prefect as api:
            server = _webhook(
                home, api, access_log=args.access_log, dispatcher=not args.no_dispatcher
            )
            with server as (url, pid):
                print(f"webhook {url}, Prefect {'at ' + api if args.with_prefect else 'absent'}")
                conns = args.connections
                warmup = int(args.rate * args.warmup)
                asyncio.run(_drive(url, run, args.rate, warmup, connections=conns, start_n=10**7))
                cpu_before, busy_before = _cpu_seconds(pid), _machine_busy_s()
                own_before = time.process_time()
                load = asyncio.run(_drive(url, run, args.rate, count, connections=conns))
                server_s = _cpu_seconds(pid) - cpu_before
                others_s = _machine_busy_s() - busy_before - server_s
                others_s -= time.process_time() - own_before
                if args.with_prefect:
                    load_end_pending = _jobs(home)[1]
                    started = time.perf_counter()
                    while _jobs(home)[1] and time.perf_counter() < started + args.drain:
                        time.sleep(0.2)
                    drain_s = time.perf_counter() - started
                    dispatch_rps = (load_end_pending - _jobs(home)[1]) / drain_s
                total, pending = _jobs(home)
            handler = _handler_ms(home / "webhook.log")
    finally:
        shutil.rmtree(home, ignore_errors=True)

    accepted = load.statuses.get("202", 0)
    errors = count - accepted
    span = max(load.last_done - load.first_send, 1e-9)
    lat, svc = load.latencies_ms, load.service_ms
    cpu_ms = server_s * 1000 / count
    others_pct = max(0.0, others_s) / span / (os.cpu_count() or 1) * 100
    print(f"requests {count} at {args.rate:g}/s over {args.duration:g} s: {load.statuses}")
    print(
        f"latency of 202s (due → answer): p50 {_percentile(lat, 50):.1f}  "
        f"p95 {_percentile(lat, 95):.1f}  p99 {_percentile(lat, 99):.1f}  "
        f"max {max(lat, default=float('nan')):.1f}  "
        f"mean {statistics.fmean(lat) if lat else float('nan'):.1f} ms"
    )
    print(
        f"  of which send → answer: p50 {_percentile(svc, 50):.1f}  p99 {_percentile(svc, 99):.1f}"
    )
    print(
        f"  of which inside the app (its log): p50 {_percentile(handler, 50):.1f}  "
        f"p99 {_percentile(handler, 99):.1f} ms"
    )
    print(f"server CPU {cpu_ms:.2f} ms/request; jobs (with warm-up) {total}, pending {pending}")
    print(f"other processes on this machine used {others_pct:.0f}% of its CPU meanwhile")
    if drain_s is not None:
        print(
            f"dispatch after the load: {dispatch_rps:.1f} flow runs/s over {drain_s:.1f} s, "
            f"{pending} still waiting"
        )
    print(
        f"result: rate={args.rate:g} sustained_rps={accepted / span:.1f} "
        f"p50_ms={_percentile(lat, 50):.1f} p95_ms={_percentile(lat, 95):.1f} "
        f"p99_ms={_percentile(lat, 99):.1f} errors={errors} server_cpu_ms={cpu_ms:.2f} "
        f"others_cpu_pct={others_pct:.0f}"
    )


if __name__ == "__main__":
    main()

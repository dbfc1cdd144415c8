"""Event → DONE latency through the embedded stack (`packshot up`), split into its parts.

Starts the stack in a scratch home (Prefect server, worker, webhook; no dashboard), serves the
sample photos from a loopback CDN stand-in, then posts one signed webhook at a time and waits
for DONE. For each event it reads the flow run's state history from the Prefect API:

    queueing       webhook accepted → flow run created by the dispatcher
    pickup         flow run created → worker submitted it (Pending)
    process start  Pending → flow code running (Running)
    steps          Running → job DONE

    .venv/bin/python benchmarks/latency.py [--rounds 2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2, help="events per sample photo")
    args = parser.parse_args()
    home = tempfile.mkdtemp(prefix="bench-latency-")
    os.environ.update(
        {
            "PACKSHOT_HOME": home,
            "PACKSHOT_WEBHOOK_SECRET": "bench-" + os.urandom(8).hex(),
            "PACKSHOT_PREFECT_PORT": "4310",
            "PACKSHOT_WEBHOOK_PORT": "8310",
            # Machine latency: a photo held for a person's review would wait for that person.
            "PACKSHOT_REVIEW": "off",
        }
    )
    import httpx
    from _prefect import state_times

    from core.settings import get_settings
    from deployments import demo as d
    from deployments.stack import Stack

    settings = get_settings()
    secret = settings.webhook_secret.get_secret_value()  # type: ignore[union-attr]
    cdn, cdn_url = d.serve_folder(d.SAMPLES)
    stack = Stack(
        settings,
        extra_env={"PACKSHOT_ALLOW_PRIVATE_SOURCES": "true"},
        services=("prefect", "worker", "webhook"),
    )
    rows: list[dict[str, float | str]] = []
    try:
        stack.start()
        with httpx.Client(timeout=10) as client:
            for round_ in range(args.rounds):
                for sample in d.samples():
                    sample.sku = f"{sample.sku}-R{round_}"
                    d.prepare([sample], cdn_url)
                    posted = time.time()
                    d.post_delivery(client, stack.webhook_url, secret, sample)
                    view = _wait_done(client, stack.webhook_url, sample.job_id)
                    done = time.time()
                    t = state_times(stack.api_url, stack.auth, str(view["flowRunId"]))
                    rows.append(
                        {
                            "sku": sample.sku,
                            "status": str(view["status"]),
                            "total": done - posted,
                            "queueing": t["created"] - posted,
                            "pickup": t.get("PENDING", t["created"]) - t["created"],
                            "process start": t.get("RUNNING", 0) - t.get("PENDING", t["created"]),
                            "steps": done - t.get("RUNNING", done),
                        }
                    )
                    print(
                        f"{sample.sku:22s} {view['status']:6s} "
                        + " ".join(
                            f"{k}={v:.2f}s" for k, v in rows[-1].items() if isinstance(v, float)
                        ),
                        flush=True,
                    )
    finally:
        cdn.shutdown()
        stack.stop()
    _report(rows)


def _wait_done(
    client: object, webhook: str, job_id: str, timeout: float = 300
) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        view = client.get(f"{webhook}/api/jobs/{job_id}").json()  # type: ignore[attr-defined]
        if view.get("status") in ("DONE", "FAILED") and view.get("flowRunId"):
            return view
        time.sleep(0.2)
    raise TimeoutError(job_id)


def _report(rows: list[dict[str, float | str]]) -> None:
    parts = ["total", "queueing", "pickup", "process start", "steps"]
    print(f"{'':14s}{'p50 s':>8s}{'p95 s':>8s}")
    for part in parts:
        values = [float(r[part]) for r in rows]
        print(f"{part:14s}{statistics.median(values):8.2f}{_percentile(values, 0.95):8.2f}")
    totals = [float(r["total"]) for r in rows]
    split = " ".join(
        f"{p.replace(' ', '_')}_p50_s={statistics.median(float(r[p]) for r in rows):.2f}"
        for p in parts[1:]
    )
    done = sum(1 for r in rows if r["status"] == "DONE")
    print(
        f"result: events={len(rows)} done={done} p50_s={statistics.median(totals):.2f} "
        f"p95_s={_percentile(totals, 0.95):.2f} {split}"
    )


if __name__ == "__main__":
    main()

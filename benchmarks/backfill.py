"""Backfill throughput through the embedded stack, against the pure pipeline on the same images.

40 images (the sample photos under distinct SKUs) go through the ``backfill/default``
deployment on a real Prefect server with one worker (chunks of 5, two at a time),
then the same 40 go through the pipeline's steps called directly, one after another, in this
process. Prints images per minute for both and their ratio (target ≥ 0.75).

    .venv/bin/python benchmarks/backfill.py [--images 40] [--chunk-size 5]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))


def _rows(count: int, cdn_url: str, prefix: str) -> list[object]:
    from deployments import demo as d
    from flows.backfill import BackfillRow

    samples = d.samples()
    d.prepare(samples, cdn_url)
    return [
        BackfillRow(sku=f"{prefix}-{i:03d}", image_url=s.image_url, sha256=s.sha256)
        for i, s in ((i, samples[i % len(samples)]) for i in range(count))
    ]


def _backfill_rate(stack: object, rows: list[object], chunk_size: int) -> float:
    from prefect.deployments import run_deployment

    from deployments.prefect_env import prefect_api
    from flows.backfill import outcomes_for

    since = datetime.now(UTC)
    started = time.perf_counter()
    with prefect_api(stack.api_url, stack.auth):  # type: ignore[attr-defined]
        run_deployment(
            "backfill/default",
            timeout=0,
            parameters={
                "rows": [r.model_dump() for r in rows],
                "theme": "default",
                "chunk_size": chunk_size,
            },
        )  # type: ignore[attr-defined]
    while True:
        outcomes = outcomes_for(rows, "default", since)  # type: ignore[arg-type]
        if outcomes.get("PENDING", 0) == 0:
            break
        time.sleep(1)
    minutes = (time.perf_counter() - started) / 60
    print(f"backfill: {dict(outcomes)} in {minutes * 60:.1f} s", flush=True)
    return len(rows) / minutes


def _pure_rate(rows: list[object]) -> float:
    from pipeline import _direct

    started = time.perf_counter()
    for row in rows:
        _direct(row.sku, row.image_url, row.sha256, "default")  # type: ignore[attr-defined]
    minutes = (time.perf_counter() - started) / 60
    print(f"pure pipeline: {len(rows)} images in {minutes * 60:.1f} s", flush=True)
    return len(rows) / minutes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=40)
    parser.add_argument("--chunk-size", type=int, default=5)
    args = parser.parse_args()
    os.environ.update(
        {
            "PACKSHOT_HOME": tempfile.mkdtemp(prefix="bench-backfill-"),
            "PACKSHOT_ALLOW_PRIVATE_SOURCES": "true",
            "PACKSHOT_PREFECT_PORT": "4311",
            "PACKSHOT_WEBHOOK_PORT": "8311",
        }
    )
    from core.settings import get_settings
    from deployments import demo as d
    from deployments.stack import Stack

    settings = get_settings()
    cdn, cdn_url = d.serve_folder(d.SAMPLES)
    stack = Stack(settings, services=("prefect", "worker"))
    try:
        stack.start()
        backfill = _backfill_rate(stack, _rows(args.images, cdn_url, "BF"), args.chunk_size)
    finally:
        stack.stop()
    pure = _pure_rate(_rows(args.images, cdn_url, "PURE"))
    cdn.shutdown()
    print(
        f"result: images={args.images} chunk_size={args.chunk_size} backfill_per_min={backfill:.1f} "
        f"pure_per_min={pure:.1f} ratio={backfill / pure:.2f}"
    )


if __name__ == "__main__":
    main()

"""Per-step time of the pipeline on sample photos, Prefect's orchestration overhead, and what the
quality step adds (``quality_share``: its time over the other steps' time; target ≤ 0.10).

The same steps run two ways, interleaved, on the same photos with ``force`` (no step skipped):
through the ``process-image`` flow on a real local Prefect server, and called directly
(each task's ``.fn`` in the same order, mapped steps on a thread pool). The overhead is the
ratio of the two wall times (target ≤ 1.15).

    .venv/bin/python benchmarks/pipeline.py [--runs 3] [PHOTO ...]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

DEFAULT_PHOTOS = ["desk_lamp.jpg", "bicycle.jpg", "sports_car.jpg"]
SAMPLES = [ROOT / "deployments" / "samples", ROOT.parent / "shared" / "data" / "samples"]


def _photos(names: list[str]) -> list[Path]:
    if names:
        return [Path(n) for n in names]
    for folder in SAMPLES:
        found = [folder / n for n in DEFAULT_PHOTOS if (folder / n).is_file()]
        if found:
            return found
    raise SystemExit("no sample photos found; pass paths")


def _direct(sku: str, url: str, sha: str, theme: str) -> str:
    """The flow's steps without Prefect: same functions, same order, same concurrency."""
    from core.schemas import ImageJobSpec
    from core.tables import JobStatus
    from tasks import (
        check_quality,
        composite,
        derivatives,
        download,
        generate_backgrounds,
        jobstate,
        publish,
        remove_background,
        write_manifest,
    )
    from tasks._hooks import advance

    spec = ImageJobSpec(sku=sku, image_url=url, sha256=sha, theme=theme)
    ctx = jobstate.open_job(spec, flow_run_id=None, force=True)
    original = download.fn(ctx)
    cut = remove_background.fn(ctx, original)
    backgrounds = generate_backgrounds.fn(ctx)
    with ThreadPoolExecutor(max_workers=4) as pool:
        comps = [
            pool.submit(composite.fn, ctx, cut.cutout_key, bg, n)
            for n, bg in enumerate(backgrounds, start=1)
        ]
        derivs = [
            pool.submit(lambda f, n: derivatives.fn(ctx, f.result(), n), f, n)
            for n, f in enumerate(comps, start=1)
        ]
        masters = [f.result() for f in comps]
        advance(ctx.job_id, JobStatus.COMPOSITED)
        for f in derivs:
            f.result()
        advance(ctx.job_id, JobStatus.DERIVATIVES)
    check_quality.fn(ctx, cut, masters)
    key = write_manifest.fn(ctx)
    publish.fn(ctx, key)
    jobstate.finish(ctx.job_id, key)
    return str(ctx.job_id)


def _flow(sku: str, url: str, sha: str, theme: str) -> str:
    from flows.process_image import process_image

    return str(process_image(sku=sku, image_url=url, sha256=sha, theme=theme, force=True)["jobId"])


def _step_ms(job_id: str) -> dict[str, float]:
    import uuid

    from core import jobs
    from core.db import session_scope
    from core.settings import get_settings

    totals: dict[str, float] = {}
    with session_scope(get_settings().database_url) as session:
        for row in jobs.list_steps(session, job_id=uuid.UUID(job_id)):
            totals[row.step] = totals.get(row.step, 0.0) + (row.duration_ms or 0.0)
    return totals


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("photos", nargs="*")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--theme", default="default")
    args = parser.parse_args()
    os.environ.setdefault("PACKSHOT_HOME", tempfile.mkdtemp(prefix="bench-packshot-"))
    from _prefect import prefect_server

    from core.settings import configure

    configure(allow_local_sources=True)
    photos = _photos(args.photos)
    with prefect_server() as api:
        from prefect.settings import (
            PREFECT_API_URL,
            PREFECT_FLOWS_HEARTBEAT_FREQUENCY,
            temporary_settings,
        )

        with temporary_settings(
            updates={PREFECT_API_URL: api, PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}
        ):
            _run(photos, args.runs, args.theme)


def _run(photos: list[Path], runs: int, theme: str) -> None:
    rows, flow_all, direct_all = [], [], []
    for photo in photos:
        sha = hashlib.sha256(photo.read_bytes()).hexdigest()
        sku = "BENCH-" + photo.stem.upper().replace("_", "-")
        url = str(photo.resolve())
        _flow(sku, url, sha, theme)  # warm-up: imports, model session, first writes
        flow_ms, direct_ms, steps = [], [], []
        for _ in range(runs):
            t = time.perf_counter()
            _direct(sku, url, sha, theme)
            direct_ms.append((time.perf_counter() - t) * 1000)
            t = time.perf_counter()
            job = _flow(sku, url, sha, theme)
            flow_ms.append((time.perf_counter() - t) * 1000)
            steps.append(_step_ms(job))
        step_median = {k: statistics.median(s[k] for s in steps) for k in steps[0]}
        rows.append(
            (photo.name, step_median, statistics.median(flow_ms), statistics.median(direct_ms))
        )
        flow_all += flow_ms
        direct_all += direct_ms
    names = list(rows[0][1])
    print(
        "photo".ljust(18)
        + "".join(n[:12].rjust(13) for n in names)
        + "flow ms".rjust(10)
        + "direct ms".rjust(11)
        + "ratio".rjust(7)
    )
    for name, step, flow, direct in rows:
        print(
            name.ljust(18)
            + "".join(f"{step.get(n, 0):13.0f}" for n in names)
            + f"{flow:10.0f}{direct:11.0f}{flow / direct:7.2f}"
        )
    flow_med, direct_med = statistics.median(flow_all), statistics.median(direct_all)
    # The quality step's share of the steps' time: its CPU added per photo (the step is pure
    # CPU and store reads, so its wall time is its cost here).
    share = statistics.median(
        step.get("quality", 0.0) / max(sum(v for k, v in step.items() if k != "quality"), 1.0)
        for _, step, _, _ in rows
    )
    print(
        f"result: photos={len(rows)} runs={runs} flow_ms={flow_med:.0f} direct_ms={direct_med:.0f} "
        f"overhead_ratio={flow_med / direct_med:.3f} quality_share={share:.3f}"
    )


if __name__ == "__main__":
    main()

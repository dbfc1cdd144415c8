"""Throughput of the whole site: images per minute, the machine's share in steps, batching.

For each profile and worker count a fresh site is started the way operators start one
(``tests/helpers/site.py``: ``packshot up`` in-process; production = Prefect and the job
tables on throwaway PostgreSQL databases, assets and Prefect results in moto's S3 server), one
photo warms it up, then a burst of signed webhooks is posted and timed until every job is DONE.

Printed per configuration:

    images/min      burst size / (last job finished − first webhook sent)
    overhead s      per image, median: flow-run wall time (Running → Completed) minus the time
                    in which some step ran (job_step intervals; mapped steps overlap, so their
                    union, not their sum: a sum would exceed the wall time)
    start s         per image, median: flow run Pending → Running (a fresh process per run)
    peak RSS MB     per worker: the largest sum over the worker and its flow-run processes,
                    sampled every 0.2 s; and the largest single flow-run process
    CPU s/image     by process: Prefect server, workers with their flow runs, webhook,
                    PostgreSQL (whole server), this process (moto S3, the CDN stand-in)

and the scaling ratio (2 workers / 1 worker) per profile. Both reference points (1 worker,
embedded) are measured in the same run.

    .venv/bin/python benchmarks/throughput.py [--images 12] [--profiles embedded,production]
        [--workers 1,2]

``--bursts 12,40`` measures instead what batching does, on the site ``packshot up`` starts
(embedded, one worker running ``--limit`` flow runs at once): for each burst size, with the
dispatcher's batches (``PACKSHOT_DISPATCH_BATCH_MAX``, default 10) and, as the reference measured
in the same run, with one flow run per photo (batch size 1):

    share in steps  Σ per photo of the time some step of it ran (union of its step intervals)
                    / (burst wall time × cores): how much of the machine went into the pipeline
    images/min      burst size / burst wall time
    runs            flow runs the burst became (batches plus photos sent alone)

    .venv/bin/python benchmarks/throughput.py --bursts 12,40 [--batch-max 10,1] [--limit 2]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.helpers.site import Site, production_site  # noqa: E402

_TICK = os.sysconf("SC_CLK_TCK")
_PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024


def _stat(pid: int) -> tuple[int, float] | None:
    """(parent pid, CPU seconds) of ``pid``; None if it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / _TICK


def _rss_mb(pid: int) -> float:
    try:
        pages = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
    except (OSError, IndexError):
        return 0.0
    return pages * _PAGE_KB / 1024


def _processes() -> dict[int, tuple[int, float, str]]:
    """pid → (parent, CPU seconds, command name) of every process."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        stat = _stat(int(entry.name))
        try:
            name = (entry / "comm").read_text().strip()
        except OSError:
            continue
        if stat is not None:
            found[int(entry.name)] = (stat[0], stat[1], name)
    return found


def _descendants(root: int, table: dict[int, tuple[int, float, str]]) -> set[int]:
    tree, changed = {root}, True
    while changed:
        changed = False
        for pid, (parent, _, _) in table.items():
            if parent in tree and pid not in tree:
                tree.add(pid)
                changed = True
    return tree


@dataclass
class Sampler:
    """Samples RSS and CPU of the site's processes in a thread."""

    groups: dict[str, int]  # name → root pid (its descendants count too)
    peak_tree_mb: dict[str, float] = field(default_factory=dict)
    peak_flow_mb: float = 0.0
    cpu: dict[str, float] = field(default_factory=dict)  # accumulated CPU s of exited + alive
    _seen: dict[int, tuple[str, float]] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)

    def _sample(self) -> None:
        table = _processes()
        for group, root in self.groups.items():
            tree = _descendants(root, table)
            self.peak_tree_mb[group] = max(
                self.peak_tree_mb.get(group, 0.0), sum(_rss_mb(p) for p in tree)
            )
            for pid in tree:
                self._seen[pid] = (group, table[pid][1])
                if group.startswith("worker") and pid != root:
                    self.peak_flow_mb = max(self.peak_flow_mb, _rss_mb(pid))
        for pid, (_, cpu, name) in table.items():
            if name.startswith("postgres"):
                self._seen[pid] = ("postgres", cpu)
        self._seen[os.getpid()] = ("this process", table[os.getpid()][1])

    def __enter__(self) -> Sampler:
        self._sample()
        self._start = {pid: cpu for pid, (_, cpu) in self._seen.items()}
        threading.Thread(target=self._run, daemon=True).start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            self._sample()

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._sample()
        for pid, (group, cpu) in self._seen.items():
            name = "workers" if group.startswith("worker") else group
            self.cpu[name] = self.cpu.get(name, 0.0) + cpu - self._start.get(pid, 0.0)


def _run_config(
    profile: str, workers: int, images: int, offset: int, limit: int
) -> dict[str, object]:

    with (
        tempfile.TemporaryDirectory(prefix="packshot-throughput-") as tmp,
        production_site(
            Path(tmp),
            workers=workers,
            embedded=profile == "embedded",
            env={"PACKSHOT_WORKER_LIMIT": str(limit)},
        ) as site,
    ):
        warm = site.deliver(f"WARM-{offset}", offset).json()["jobId"]
        site.wait_until_ended([warm], timeout=300)
        groups = {s.name: s.process.pid for s in site.stack.services if s.process is not None}
        with Sampler(groups) as sampler:
            started = time.time()
            answers = [site.deliver(f"T-{offset + n}", offset + n) for n in range(1, images + 1)]
            ids = [a.json()["jobId"] for a in answers]
            jobs = site.wait_until_ended(ids, timeout=60 * images)
        finished = max(j.finished_at.timestamp() for j in jobs.values() if j.finished_at)
        failed = [j.sku for j in jobs.values() if j.status != "DONE"]
        overhead, start = _per_image(site, ids)
        return {
            "profile": profile,
            "workers": workers,
            "per_min": images / ((finished - started) / 60),
            "failed": failed,
            "overhead_s": overhead,
            "start_s": start,
            "peak_worker_mb": max(v for k, v in sampler.peak_tree_mb.items() if "worker" in k),
            "peak_flow_mb": sampler.peak_flow_mb,
            "cpu": {k: v / images for k, v in sampler.cpu.items()},
        }


def _union_s(intervals: list[tuple[float, float]]) -> float:
    """Seconds covered by at least one interval (mapped steps overlap)."""
    total, reach = 0.0, float("-inf")
    for begin, end in sorted(intervals):
        if end > reach:
            total += end - max(begin, reach)
            reach = end
    return total


def _pending_to_running(api_url: str, auth: str | None, run_ids: list[str]) -> list[float]:
    """Per run: seconds from Pending (a worker took it) to Running (its process started)."""
    from _prefect import state_times

    found = []
    for run_id in run_ids:
        times = state_times(api_url, auth, run_id)
        if "PENDING" in times and "RUNNING" in times:
            found.append(times["RUNNING"] - times["PENDING"])
    return found


def _step_spans(site: Site, ids: list[str]) -> dict[str, list[tuple[float, float]]]:
    """Job id → the (start, end) of each of its finished steps, epoch seconds."""
    from sqlmodel import Session, col, select

    from core.db import get_engine
    from core.tables import JobStep

    with Session(get_engine(site.settings.database_url)) as session:
        rows = session.exec(
            select(JobStep).where(col(JobStep.job_id).in_([uuid.UUID(i) for i in ids]))
        ).all()
    spans: dict[str, list[tuple[float, float]]] = {}
    for row in rows:
        if row.started_at and row.finished_at:
            span = (row.started_at.timestamp(), row.finished_at.timestamp())
            spans.setdefault(str(row.job_id), []).append(span)
    return spans


def _per_image(site: Site, ids: list[str]) -> tuple[float, float]:
    """Medians over ``ids``: (flow-run wall − time some step ran, Pending → Running), seconds."""
    runs = site.settled_flow_runs(ids)
    intervals = _step_spans(site, ids)
    overheads = []
    for job_id, found in runs.items():
        run = found[-1]
        if run.start_time and run.end_time:
            wall = (run.end_time - run.start_time).total_seconds()
            overheads.append(wall - _union_s(intervals.get(job_id, [])))
    starts = _pending_to_running(
        site.stack.api_url, site.stack.auth, [str(r[-1].id) for r in runs.values()]
    )
    return statistics.median(overheads), statistics.median(starts) if starts else 0.0


def _steps_s(site: Site, ids: list[str]) -> float:
    """Σ over ``ids`` of the seconds in which some step of that photo ran."""
    return sum(_union_s(found) for found in _step_spans(site, ids).values())


def _sample_photo(site: Site, n: int) -> tuple[str, str]:
    """The demo's sample photos in turn, each copy made unique (a JPEG comment), on the CDN.

    Real photos (0.3–1.7 MP): a drawn test photo is so cheap to process that the fixed cost
    of a run would dominate any burst. The comment changes the bytes, not the pixels, so no
    copy reuses another's stored original or cut-out.
    """
    from deployments.demo import SAMPLES

    files = sorted(SAMPLES.glob("*.jpg"))
    data = files[n % len(files)].read_bytes()
    comment = f"burst photo {n}".encode()
    unique = data[:2] + b"\xff\xfe" + (len(comment) + 2).to_bytes(2, "big") + comment + data[2:]
    name = f"sample-{n}.jpg"
    (site.cdn_dir / name).write_bytes(unique)
    return f"{site.cdn_url}/{name}", hashlib.sha256(unique).hexdigest()


def _burst(site: Site, size: int, offset: int) -> dict[str, float]:
    """Post ``size`` webhooks at once and wait for every job: share in steps, rate, runs."""
    from concurrent.futures import ThreadPoolExecutor

    photos = [_sample_photo(site, offset + n) for n in range(size)]  # before the clock starts
    groups = {s.name: s.process.pid for s in site.stack.services if s.process is not None}
    with Sampler(groups) as sampler:
        started = time.time()
        with ThreadPoolExecutor(max_workers=16) as pool:  # a burst: uploads arrive together
            answers = pool.map(
                lambda n: site.deliver(f"B-{offset + n}", offset + n, photo=photos[n]), range(size)
            )
            ids = [answer.json()["jobId"] for answer in answers]
        jobs = site.wait_until_ended(ids, timeout=60 * size)
    failed = [j.sku for j in jobs.values() if j.status != "DONE"]
    if failed:
        raise SystemExit(f"burst of {size}: jobs not DONE: {failed}")
    wall = max(j.finished_at.timestamp() for j in jobs.values() if j.finished_at) - started
    runs = {j.flow_run_id for j in jobs.values()}
    carriers = _carrier_runs(site, [str(r) for r in runs if r])
    cpu = " ".join(f"{k}={v / size:.2f}" for k, v in sorted(sampler.cpu.items()))
    overhead, _ = _per_image(site, ids)
    print(f"   CPU s per image: {cpu}; photo run wall − steps: {overhead:.2f} s", flush=True)
    return {
        "share": _steps_s(site, ids) / (wall * (os.cpu_count() or 1)),
        "per_min": size / (wall / 60),
        "runs": float(len(carriers)),
    }


def _carrier_runs(site: Site, run_ids: list[str]) -> set[str]:
    """The top-level flow runs behind ``run_ids`` (a photo's subflow counts as its batch)."""
    import asyncio

    from prefect.client.orchestration import PrefectClient

    async def read() -> set[str]:
        found = set()
        async with PrefectClient(site.stack.api_url, auth_string=site.stack.auth) as client:
            for run_id in run_ids:
                run = await client.read_flow_run(uuid.UUID(run_id))
                if run.parent_task_run_id is None:
                    found.add(run_id)
                else:
                    parent = await client.read_task_run(run.parent_task_run_id)
                    found.add(str(parent.flow_run_id))
        return found

    return asyncio.run(read())


def _bursts(sizes: list[int], batch_maxes: list[int], limit: int) -> None:
    """Each burst size with each batch size, on a fresh embedded site per batch size."""
    results: dict[tuple[int, int], dict[str, float]] = {}
    offset = 5000
    for batch_max in batch_maxes:
        env = {
            "PACKSHOT_WORKER_LIMIT": str(limit),
            "PACKSHOT_DISPATCH_BATCH_MAX": str(batch_max),
            "PACKSHOT_MASTER_SIZE": "1600",  # packshot up's default (the test site saves CPU)
        }
        with (
            tempfile.TemporaryDirectory(prefix="packshot-bursts-") as tmp,
            production_site(Path(tmp), workers=1, embedded=True, env=env) as site,
        ):
            warm = site.deliver(f"WARM-{offset}", offset).json()["jobId"]
            site.wait_until_ended([warm], timeout=300)
            for size in sizes:
                offset += size + 1
                found = _burst(site, size, offset)
                results[(batch_max, size)] = found
                print(
                    f"   batch ≤{batch_max}, burst {size}: {found['share']:.0%} of the machine "
                    f"in steps, {found['per_min']:.1f} images/min, {found['runs']:.0f} flow runs",
                    flush=True,
                )
    parts = []
    for (batch_max, size), found in sorted(results.items()):
        tag = f"b{batch_max}_burst{size}"
        parts += [
            f"{tag}_share={found['share']:.2f}",
            f"{tag}_per_min={found['per_min']:.1f}",
            f"{tag}_runs={found['runs']:.0f}",
        ]
    print("result: " + " ".join(parts))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=12, help="photos per burst")
    parser.add_argument("--bursts", default="", help="burst sizes: measure batching instead")
    parser.add_argument(
        "--batch-max", default="10,1", help="with --bursts: batch sizes to compare (1 = none)"
    )
    parser.add_argument("--profiles", default="embedded,production")
    parser.add_argument("--workers", default="1,2", help="worker counts to compare")
    parser.add_argument(
        "--limit",
        type=int,
        default=None,
        help="flow runs at once per worker (default 1: a worker per core; with --bursts 2, "
        "as packshot up runs)",
    )
    args = parser.parse_args()
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    if args.bursts:
        sizes = [int(n) for n in args.bursts.split(",")]
        _bursts(sizes, [int(n) for n in args.batch_max.split(",")], args.limit or 2)
        return
    results = []
    offset = 1000
    for profile in args.profiles.split(","):
        for workers in (int(w) for w in args.workers.split(",")):
            print(
                f"== {profile}, {workers} worker(s) × {args.limit or 1} run(s), {args.images} images",
                flush=True,
            )
            result = _run_config(profile, workers, args.images, offset, args.limit or 1)
            offset += args.images + 1
            results.append(result)
            cpu = " ".join(f"{k}={v:.1f}" for k, v in sorted(result["cpu"].items()))  # type: ignore[attr-defined]
            print(
                f"   {result['per_min']:.1f} images/min, overhead {result['overhead_s']:.2f} s, "
                f"process start {result['start_s']:.2f} s, peak RSS per worker "
                f"{result['peak_worker_mb']:.0f} MB (one flow run {result['peak_flow_mb']:.0f} MB)"
                f", failed {result['failed'] or 'none'}\n   CPU s per image: {cpu}",
                flush=True,
            )
    _summary(results)


def _summary(results: list[dict[str, object]]) -> None:
    rate = {(r["profile"], r["workers"]): float(r["per_min"]) for r in results}  # type: ignore[arg-type]
    parts = []
    for (profile, workers), value in sorted(rate.items()):
        parts.append(f"{profile}_{workers}w_per_min={value:.1f}")
        if workers != 1 and (profile, 1) in rate:
            parts.append(f"{profile}_scaling_{workers}w={value / rate[(profile, 1)]:.2f}")
    for r in results:
        parts.append(f"{r['profile']}_{r['workers']}w_overhead_s={float(r['overhead_s']):.2f}")  # type: ignore[arg-type]
        parts.append(
            f"{r['profile']}_{r['workers']}w_peak_worker_mb={float(r['peak_worker_mb']):.0f}"
        )  # type: ignore[arg-type]
    print("result: " + " ".join(parts))


if __name__ == "__main__":
    main()

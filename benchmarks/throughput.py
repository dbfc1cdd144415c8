"""Throughput of the whole site: images per minute for 1 and 2 workers, embedded and production.

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
"""

from __future__ import annotations

import argparse
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


def _per_image(site: Site, ids: list[str]) -> tuple[float, float]:
    """Medians over ``ids``: (flow-run wall − time some step ran, Pending → Running), seconds."""
    from sqlmodel import Session, col, select

    from core.db import get_engine
    from core.tables import JobStep

    runs = site.settled_flow_runs(ids)
    with Session(get_engine(site.settings.database_url)) as session:
        rows = session.exec(
            select(JobStep).where(col(JobStep.job_id).in_([uuid.UUID(i) for i in ids]))
        ).all()
    intervals: dict[str, list[tuple[float, float]]] = {}
    for row in rows:
        if row.started_at and row.finished_at:
            span = (row.started_at.timestamp(), row.finished_at.timestamp())
            intervals.setdefault(str(row.job_id), []).append(span)
    overheads = []
    for job_id, found in runs.items():
        run = found[-1]
        if run.start_time and run.end_time:
            wall = (run.end_time - run.start_time).total_seconds()
            overheads.append(wall - _union_s(intervals.get(job_id, [])))
    starts = _pending_to_running(
        site.stack.api_url, site.stack.auth, [str(r[-1].id) for r in runs.values()]
    )
    return statistics.median(overheads), statistics.median(starts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=12, help="photos per burst")
    parser.add_argument("--profiles", default="embedded,production")
    parser.add_argument("--workers", default="1,2", help="worker counts to compare")
    parser.add_argument(
        "--limit", type=int, default=1, help="flow runs at once per worker (1: a worker per core)"
    )
    args = parser.parse_args()
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    results = []
    offset = 1000
    for profile in args.profiles.split(","):
        for workers in (int(w) for w in args.workers.split(",")):
            print(
                f"== {profile}, {workers} worker(s) × {args.limit} run(s), {args.images} images",
                flush=True,
            )
            result = _run_config(profile, workers, args.images, offset, args.limit)
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

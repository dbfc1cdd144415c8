"""A first `packshot process` on a fresh home, then the next one: wall time and where it went.

Each round makes a new ``PACKSHOT_HOME`` (nothing running for it), runs ``packshot process PHOTO
--sku ... --json`` there twice, as a user would, and stops the home's background Prefect server.
It prints, per command, the wall time (process start to exit, what the user waits), and the
command's own split from its JSON (``timingsMs``: the wait for the Prefect server, the
preparation, the flow). Run it with no stack running on the Prefect port.

The reference, measured in each round after the two commands: the same photo's steps in a fresh
interpreter and a fresh home with no Prefect server and no flow run (``pipeline._direct``: the
tasks' functions called directly, same order, same concurrency, the segmenter on as many threads
as the command gives it), start to exit. It is the floor orchestration adds to: the interpreter,
the imports (Prefect's included: the tasks' module needs it), the tables, the model and the
steps. ``fresh_vs_direct`` is the first command's wall time over it, a figure that moves far less
than the seconds do when the machine's speed changes.

    .venv/bin/python benchmarks/first_process.py [--rounds 3] [PHOTO]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.settings import Settings  # noqa: E402
from deployments import local_server  # noqa: E402

PACKSHOT = ROOT / ".venv" / "bin" / "packshot"
PYTHON = ROOT / ".venv" / "bin" / "python"
DEFAULT_PHOTO = ROOT / "deployments" / "samples" / "desk_lamp.jpg"


def _command(home: Path, photo: Path, sku: str) -> dict[str, float]:
    """One ``packshot process``: its wall time and its own timings, in seconds."""
    env = {**os.environ, "PACKSHOT_HOME": str(home)}
    started = time.perf_counter()
    done = subprocess.run(
        [str(PACKSHOT), "process", str(photo), "--sku", sku, "--json"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    wall = time.perf_counter() - started
    if done.returncode not in (0, 3):  # 3: held for review, a finished run all the same
        raise SystemExit(f"packshot process exited {done.returncode}: {done.stderr.strip()}")
    timings = json.loads(done.stdout)["timingsMs"]
    return {
        "wall": wall,
        "wait": timings["prefectStartupWait"] / 1000,
        "prepare": timings["warmUp"] / 1000,
        "flow": timings["flow"] / 1000,
    }


def _direct_wall(home: Path, photo: Path, sku: str) -> float:
    """The reference: this photo's steps, no server or run, in a fresh interpreter (seconds)."""
    env = {**os.environ, "PACKSHOT_HOME": str(home)}
    started = time.perf_counter()
    subprocess.run(
        [str(PYTHON), __file__, "--direct", str(photo), "--sku", sku],
        env=env,
        check=True,
        timeout=300,
    )
    return time.perf_counter() - started


def _direct(photo: Path, sku: str) -> None:
    """Child of ``_direct_wall``: what ``packshot process`` does for the photo, minus the
    Prefect server and the flow run."""
    import hashlib

    from core.db import upgrade_schema
    from core.settings import configure

    # As `packshot process` sets it (deployments.cli): the machine's cores, at most 4.
    threads = max(1, min(len(os.sched_getaffinity(0)), 4))
    settings = configure(allow_local_sources=True, segmenter_threads=threads)
    upgrade_schema(settings.database_url)
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from pipeline import _direct as run_steps

    sha = hashlib.sha256(photo.read_bytes()).hexdigest()
    run_steps(sku, str(photo.resolve()), sha, "default")
    sys.stdout.flush()
    os._exit(0)  # as the command ends: without the interpreter's teardown of the heap


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("photo", nargs="?", type=Path, default=DEFAULT_PHOTO)
    parser.add_argument("--rounds", type=int, default=3, help="fresh homes to try")
    parser.add_argument("--direct", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--sku", default="DIRECT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.direct:
        _direct(args.photo, args.sku)
    first: list[dict[str, float]] = []
    second: list[dict[str, float]] = []
    direct: list[float] = []
    for round_ in range(1, args.rounds + 1):
        with tempfile.TemporaryDirectory(prefix="packshot-first-") as scratch:
            home = Path(scratch) / "home"
            try:
                first.append(_command(home, args.photo, f"FIRST-{round_}"))
                second.append(_command(home, args.photo, f"NEXT-{round_}"))
            finally:
                local_server.stop(Settings(home=home))
            direct.append(_direct_wall(Path(scratch) / "direct", args.photo, f"DIRECT-{round_}"))
        _print_round(round_, first[-1], second[-1], direct[-1])
    med = {
        f"{tag}_{key}_s": statistics.median(run[key] for run in runs)
        for tag, runs in (("fresh", first), ("next", second))
        for key in ("wall", "wait", "flow")
    }
    med["direct_wall_s"] = statistics.median(direct)
    ratio = statistics.median(run["wall"] / ref for run, ref in zip(first, direct, strict=True))
    print(
        "result: "
        + " ".join(f"{name}={value:.2f}" for name, value in med.items())
        + f" fresh_vs_direct={ratio:.2f}"
    )


def _print_round(
    round_: int, fresh: dict[str, float], next_: dict[str, float], direct: float
) -> None:
    for label, found in (("fresh home", fresh), ("next command", next_)):
        print(
            f"round {round_} {label:<12} wall {found['wall']:5.2f} s  wait for Prefect "
            f"{found['wait']:5.2f} s  prepare {found['prepare']:4.2f} s  flow "
            f"{found['flow']:4.2f} s",
            flush=True,
        )
    print(f"round {round_} {'no server':<12} wall {direct:5.2f} s  (the reference)", flush=True)


if __name__ == "__main__":
    main()

"""A first `packshot process` on a fresh home, then the next one: wall time and where it went.

Each round makes a new ``PACKSHOT_HOME`` (nothing running for it), runs ``packshot process PHOTO
--sku ... --json`` there twice, as a user would, and stops the home's background Prefect server.
It prints, per command, the wall time (process start to exit, what the user waits), and the
command's own split from its JSON (``timingsMs``: the wait for the Prefect server, the
preparation, the flow). Run it with no stack running on the Prefect port.

Two references, measured in each round after the two commands, each in a fresh interpreter and a
fresh home, start to exit, on the same photo:

* ``direct``: the steps with no Prefect server and no flow run (``pipeline._direct``: the tasks'
  functions called directly, same order, same concurrency, the segmenter on as many threads as
  the command gives it). The floor orchestration adds to: the interpreter, the imports
  (Prefect's included: the tasks' module needs it), the tables, the model and the steps.
* ``prefect_temporary``: the ``process-image`` flow called with no Prefect API configured, so
  Prefect starts its own temporary server for it (migrating a new database), as ``packshot
  process`` did before it had a background server: the starting point of the target.

``fresh_vs_direct`` and ``fresh_vs_prefect_temporary`` are the first command's wall time over
each (medians of the rounds' ratios): figures that move far less than the seconds do when the
machine's speed changes. The target, under 5 s where the temporary server's path took 12-14 s,
is a ratio to it under about 0.36.

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


def _reference_wall(mode: str, scratch: Path, photo: Path, sku: str) -> float:
    """One reference (``--direct`` or ``--prefect-temporary``) in a fresh interpreter and fresh
    homes under ``scratch``: its wall time in seconds."""
    env = {
        **os.environ,
        "PACKSHOT_HOME": str(scratch / "home"),
        "PREFECT_HOME": str(scratch / "prefect"),
        "PREFECT_SERVER_ALLOW_EPHEMERAL_MODE": "true",
    }
    env.pop("PREFECT_API_URL", None)
    started = time.perf_counter()
    done = subprocess.run(
        [str(PYTHON), __file__, mode, str(photo), "--sku", sku],
        env=env,
        capture_output=True,  # Prefect's run logs
        text=True,
        check=False,
        timeout=300,
    )
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"reference {mode} exited {done.returncode}: {done.stderr[-2000:]}")
    return wall


def _reference(photo: Path, sku: str, *, flow: bool) -> None:
    """Child of ``_reference_wall``: the photo through the steps directly, or (``flow``)
    through the flow on Prefect's temporary server."""
    import hashlib

    from core.db import upgrade_schema
    from deployments.runner import one_photo_settings

    settings = one_photo_settings()  # as `packshot process` has them
    upgrade_schema(settings.database_url)
    sha = hashlib.sha256(photo.read_bytes()).hexdigest()
    if flow:
        from flows.process_image import process_image

        process_image(sku=sku, image_url=str(photo.resolve()), sha256=sha, theme="default")
        return  # a normal exit: Prefect's exit handler stops its temporary server
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from pipeline import _direct as run_steps

    run_steps(sku, str(photo.resolve()), sha, "default")
    sys.stdout.flush()
    os._exit(0)  # as the command ends: without the interpreter's teardown of the heap


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("photo", nargs="?", type=Path, default=DEFAULT_PHOTO)
    parser.add_argument("--rounds", type=int, default=3, help="fresh homes to try")
    parser.add_argument("--direct", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--prefect-temporary", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--sku", default="REFERENCE", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.direct or args.prefect_temporary:
        _reference(args.photo, args.sku, flow=args.prefect_temporary)
        return
    first: list[dict[str, float]] = []
    second: list[dict[str, float]] = []
    refs: dict[str, list[float]] = {"direct": [], "prefect_temporary": []}
    for round_ in range(1, args.rounds + 1):
        with tempfile.TemporaryDirectory(prefix="packshot-first-") as scratch:
            home = Path(scratch) / "home"
            try:
                first.append(_command(home, args.photo, f"FIRST-{round_}"))
                second.append(_command(home, args.photo, f"NEXT-{round_}"))
            finally:
                local_server.stop(Settings(home=home))
            for name, walls in refs.items():
                mode = "--" + name.replace("_", "-")
                walls.append(_reference_wall(mode, Path(scratch) / name, args.photo, "REF"))
        _print_round(round_, first[-1], second[-1], {k: v[-1] for k, v in refs.items()})
    med = {
        f"{tag}_{key}_s": statistics.median(run[key] for run in runs)
        for tag, runs in (("fresh", first), ("next", second))
        for key in ("wall", "wait", "flow")
    }
    for name, walls in refs.items():
        med[f"{name}_wall_s"] = statistics.median(walls)
        med[f"fresh_vs_{name}"] = statistics.median(
            run["wall"] / ref for run, ref in zip(first, walls, strict=True)
        )
    print("result: " + " ".join(f"{name}={value:.2f}" for name, value in med.items()))


def _print_round(
    round_: int, fresh: dict[str, float], next_: dict[str, float], refs: dict[str, float]
) -> None:
    for label, found in (("fresh home", fresh), ("next command", next_)):
        print(
            f"round {round_} {label:<12} wall {found['wall']:5.2f} s  wait for Prefect "
            f"{found['wait']:5.2f} s  prepare {found['prepare']:4.2f} s  flow "
            f"{found['flow']:4.2f} s",
            flush=True,
        )
    print(
        f"round {round_} references   steps alone {refs['direct']:5.2f} s  on Prefect's "
        f"temporary server {refs['prefect_temporary']:5.2f} s",
        flush=True,
    )


if __name__ == "__main__":
    main()

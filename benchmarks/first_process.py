"""A first `packshot process` on a fresh home, then the next one: wall time and where it went.

Each round makes a new ``PACKSHOT_HOME`` (nothing running for it), runs ``packshot process PHOTO
--sku ... --json`` there twice, as a user would, and stops the home's background Prefect server.
It prints, per command, the wall time (process start to exit, what the user waits), and the
command's own split from its JSON (``timingsMs``: the wait for the Prefect server, the
preparation, the flow). Run it with no stack running on the Prefect port.

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("photo", nargs="?", type=Path, default=DEFAULT_PHOTO)
    parser.add_argument("--rounds", type=int, default=3, help="fresh homes to try")
    args = parser.parse_args()
    first: list[dict[str, float]] = []
    second: list[dict[str, float]] = []
    for round_ in range(1, args.rounds + 1):
        with tempfile.TemporaryDirectory(prefix="packshot-first-") as scratch:
            home = Path(scratch) / "home"
            try:
                first.append(_command(home, args.photo, f"FIRST-{round_}"))
                second.append(_command(home, args.photo, f"NEXT-{round_}"))
            finally:
                local_server.stop(Settings(home=home))
        for label, found in (("fresh home", first[-1]), ("next command", second[-1])):
            print(
                f"round {round_} {label:<12} wall {found['wall']:5.2f} s  wait for Prefect "
                f"{found['wait']:5.2f} s  prepare {found['prepare']:4.2f} s  flow "
                f"{found['flow']:4.2f} s",
                flush=True,
            )
    med = {
        f"{tag}_{key}_s": statistics.median(run[key] for run in runs)
        for tag, runs in (("fresh", first), ("next", second))
        for key in ("wall", "wait", "flow")
    }
    print("result: " + " ".join(f"{name}={value:.2f}" for name, value in med.items()))


if __name__ == "__main__":
    main()

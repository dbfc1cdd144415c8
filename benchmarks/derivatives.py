"""Derivative step CPU as a ratio to the encode floor at the same settings, in the same run.

Builds two photo-like 1600 px master composites in memory (see ``_common.py``), then, in
interleaved rounds, times:

* derive: ``imaging.derivatives.render_all`` on each master (resize chain + 9 encodes on its
  thread pool), process CPU over all threads;
* floor: the same 18 encodes alone, one at a time on this thread, from images resized once
  beforehand, straight through Pillow with the same settings (the definition of the
  reference benchmark's ``encode_floor.py``, docs/benchmarks.md): what any implementation with these codecs pays.

``ratio`` = median derive CPU / floor (sum of the per-encode medians); ``pair_ratio_median``
= median over rounds of derive / that round's floor, steadier when other work shares the
cores. Target: ratio <= 1.3 (docs/benchmarks.md; sharp 1.2-1.3, careful Pillow 1.4-1.6).

    .venv/bin/python benchmarks/derivatives.py [--repeat 7] [--master 1600] [--workers 2]
"""

from __future__ import annotations

import argparse
import io
import statistics
import time

from _common import make_masters, median_cpu
from PIL import Image

from imaging.derivatives import DEFAULT_SPECS, render_all

# The chosen profile of encode_floor.py, which render_all's defaults match.
FLOOR_SETTINGS = {
    "jpeg": ("JPEG", {"quality": 85, "optimize": True, "progressive": True}),
    "webp": ("WEBP", {"quality": 82, "method": 4}),
    "avif": ("AVIF", {"quality": 55, "speed": 8, "max_threads": 1}),
}


def floor_round(
    resized: list[dict[int, Image.Image]], times: dict[tuple[int, str, int], list]
) -> float:
    """One pass over the 18 encodes; appends each encode's thread CPU time, returns the sum."""
    total = 0.0
    for m, by_size in enumerate(resized):
        for spec in DEFAULT_SPECS:
            name, options = FLOOR_SETTINGS[spec.fmt]
            out = io.BytesIO()
            started = time.thread_time()
            by_size[spec.size].save(out, name, **options)
            elapsed = time.thread_time() - started
            times.setdefault((m, spec.fmt, spec.size), []).append(elapsed)
            total += elapsed
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--master", type=int, default=1600)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    masters = make_masters(args.master)
    sizes = sorted({spec.size for spec in DEFAULT_SPECS})
    resized = [
        {size: master.resize((size, size), Image.Resampling.LANCZOS) for size in sizes}
        for master in masters
    ]

    def derive() -> None:
        for master in masters:
            render_all(master, DEFAULT_SPECS, workers=args.workers)

    derive()  # warm-up: codec libraries, thread start-up
    floor_round(resized, {})
    floor_times: dict[tuple[int, str, int], list] = {}
    derive_cpu, derive_wall, pairs = [], [], []
    for _ in range(args.repeat):  # interleaved, so drift on a shared machine hits both alike
        floor_total = floor_round(resized, floor_times)
        cpu, wall = median_cpu(derive, 1)
        derive_cpu.append(cpu)
        derive_wall.append(wall)
        pairs.append(cpu / floor_total)

    per_format = {fmt: 0.0 for fmt in FLOOR_SETTINGS}
    for (_, fmt, _), samples in floor_times.items():
        per_format[fmt] += statistics.median(samples)
    floor = sum(per_format.values())
    cpu, wall = statistics.median(derive_cpu), statistics.median(derive_wall)
    print(
        f"masters: {len(masters)} x {args.master} px; outputs: {len(masters) * len(DEFAULT_SPECS)}"
    )
    print("floor per format (CPU s): " + ", ".join(f"{k} {v:.3f}" for k, v in per_format.items()))
    print(f"derive CPU s per round: {', '.join(f'{c:.3f}' for c in derive_cpu)}")
    print(
        f"result: derive_cpu_s={cpu:.3f} floor_cpu_s={floor:.3f} ratio={cpu / floor:.3f} "
        f"pair_ratio_median={statistics.median(pairs):.3f} derive_wall_s={wall:.3f} "
        f"workers={args.workers} repeat={args.repeat}"
    )


if __name__ == "__main__":
    main()

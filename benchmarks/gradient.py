"""CPU of one dithered 1600 px background, linear and radial (the local background renderer).

Target: well under 100 ms per background on an idle core (the timing that used to be asserted
in ``tests/imaging/test_background.py``; tests assert behaviour, timing lives here).

    .venv/bin/python benchmarks/gradient.py [--repeat 7] [--size 1600]
"""

from __future__ import annotations

import argparse

from _common import median_cpu

from imaging.background import GradientStop, render_gradient

SWEEP = [GradientStop(0.0, (250, 248, 245)), GradientStop(1.0, (190, 180, 170))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--size", type=int, default=1600)
    args = parser.parse_args()
    cpu_ms: dict[str, float] = {}
    for kind in ("linear", "radial"):
        render_gradient(args.size, SWEEP, kind=kind)  # warm-up
        cpu, wall = median_cpu(
            lambda kind=kind: render_gradient(args.size, SWEEP, kind=kind), args.repeat
        )
        cpu_ms[kind] = cpu * 1000
        print(f"{kind:7s} {args.size} px  cpu {cpu * 1000:6.1f} ms  wall {wall * 1000:6.1f} ms")
    print(
        f"result: size={args.size} linear_cpu_ms={cpu_ms['linear']:.1f} "
        f"radial_cpu_ms={cpu_ms['radial']:.1f}"
    )


if __name__ == "__main__":
    main()

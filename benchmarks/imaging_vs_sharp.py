"""Our imaging steps on the reference benchmark's inputs, as a CLI shaped like its pil_opt.py.

One job = decode the cut-out and two backgrounds -> place once -> 2 master composites (written
as PNG, zlib level 1 + RLE, like the reference) -> 2 x 9 derivatives (render_all). Meant to be
timed as a whole process against the sharp reference with the reference's interleaved A/B
timer. Setup, from the project root, with $BENCH_DIR a scratch copy of the reference benchmark
(docs/benchmarks.md, "Reference anchors"; npm fetches sharp's prebuilt binaries):

    ROOT=$PWD; PY=$ROOT/.venv/bin/python
    cd "$BENCH_DIR" && npm install
    $PY gen_inputs.py bench-inputs --masters 1600
    export BENCH_INPUTS=$PWD/bench-inputs
    OURS="env -u PYTHONDONTWRITEBYTECODE PYTHONPYCACHEPREFIX=$PWD/pycache $PY"
    $PY abrun.py -n 9 \
      "$OURS $ROOT/benchmarks/imaging_vs_sharp.py --out bench-out/ours --step all" \
      "node sharp_pipeline.mjs --out bench-out/sharp --step all --jpeg-optimize 1 \
         --jpeg-progressive 1 --avif-speed 8 --png-level 1"

(The ``env`` prefix lets Python keep compiled bytecode in a scratch folder, as any installed
deployment does; with PYTHONDONTWRITEBYTECODE=1 and no .pyc files in the venv, every start
recompiles numpy and Pillow, ~0.15 s of CPU that the node side does not pay.)

The "A/B cpu ratio median" it prints is the figure of docs/benchmarks.md (target <= 1.0).
``--step composite`` / ``--step derive`` split the job like the reference scripts do
(derive reads the master PNGs that composite wrote).
"""

from __future__ import annotations

import argparse
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from PIL import Image

from imaging.codec import decode, encode
from imaging.derivatives import DEFAULT_SPECS, render_all

if TYPE_CHECKING:
    from imaging.composite import Placement

BACKGROUNDS = ("a", "b")
# The reference scales the whole cut-out to 90 % of the master and puts a sigma-20 px,
# 30 %, (5, 5) px shadow under it, all in master pixels.
REFERENCE_FILL = 0.90


def _read(path: Path) -> Image.Image:
    return decode(path.read_bytes())


def _write(path: Path, data: bytes) -> None:
    path.write_bytes(data)


def _write_png(path: Path, image: Image.Image) -> None:
    path.write_bytes(encode(image, "png"))


def _placement(cutout: Image.Image, master: int) -> Placement:
    from imaging.composite import Shadow, place
    from imaging.geometry import alpha_bbox

    box = alpha_bbox(cutout)
    assert box is not None
    # Same scale as the reference: our fill is the product's share, theirs the cut-out's.
    fill = REFERENCE_FILL * max(box[2] - box[0], box[3] - box[1]) / max(cutout.size)
    shadow = Shadow(blur=20.0, opacity=0.3, offset=(5.0, 5.0), reference_size=master)
    return place(cutout, master, fill=fill, shadow=shadow)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inputs", default=os.environ.get("BENCH_INPUTS", "bench-inputs"))
    parser.add_argument("--out", required=True)
    parser.add_argument("--master", type=int, default=1600)
    parser.add_argument("--step", choices=("composite", "derive", "all"), default="all")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    inputs, out = Path(args.inputs), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    with ThreadPoolExecutor(max_workers=args.workers) as pool:
        if args.step == "derive":
            masters = list(pool.map(_read, [out / f"{bg}_master.png" for bg in BACKGROUNDS]))
        else:
            cutout = pool.submit(_read, inputs / "cutout.png")
            paths = [inputs / f"bg_{bg}_{args.master}.png" for bg in BACKGROUNDS]
            backgrounds = pool.map(_read, paths)
            from imaging.composite import composite  # the derive step does not load it

            placement = _placement(cutout.result(), args.master)
            masters = [composite(bg, placement) for bg in backgrounds]
            for bg, master in zip(BACKGROUNDS, masters, strict=True):
                pool.submit(_write_png, out / f"{bg}_master.png", master)
        if args.step == "composite":
            return
        # Both masters at once, as the pipeline's two mapped derivative tasks run (and as the
        # reference's Promise.all does); each renders on its own ``workers`` encoder threads.
        with ThreadPoolExecutor(max_workers=len(masters)) as per_master:
            done = per_master.map(
                lambda bg, m: _derive(out, bg, m, args.workers), BACKGROUNDS, masters
            )
            list(done)


def _derive(out: Path, bg: str, master: Image.Image, workers: int) -> None:
    for rendered in render_all(master, DEFAULT_SPECS, workers=workers):
        _write(out / f"{bg}_{rendered.spec.name}.{rendered.spec.extension}", rendered.data)


if __name__ == "__main__":
    main()

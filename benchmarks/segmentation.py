"""Local segmenter quality and speed on the segmentation dev set (photos + ground-truth masks).

Runs the real ``LocalRemover`` over every ``NAME.jpg`` / ``NAME.mask.png`` pair and reports, per
image and overall: IoU of the mask (alpha >= 0.5) against ``gt > 127``, MAE of the soft alpha,
boundary F-measure (tolerance 0.0075 x image diagonal, square window) and milliseconds per image
(the whole ``remove`` call: passes, refinement, cutout and mask; wall-clock median, plus process
CPU time, which other jobs on the machine disturb less). ``--baseline`` also runs the
plain recipe of the model's own README (squashed Lanczos input, min-max, Lanczos resize
back, threshold 0.5) in the same run, so the two can be compared directly.

    .venv/bin/python benchmarks/segmentation.py [--data DIR] [--baseline] [--hard] [--threads 1] [--scale 1]

``--hard`` adds the hard cases of ``benchmarks/_hardcases.py`` (exact ground truth: products on
busy scenes, beside printed text, white on white, glass) and prints each set's summary apart.

The dev set is not in the repository (docs/benchmarks.md): ``--data DIR``, else
$PACKSHOT_SEGMENTATION_DATA, else the shared data folder beside the checkout.
``--scale F`` enlarges every photo and mask by F first (checks behaviour on bigger photos).
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks._hardcases import hard_cases  # noqa: E402
from core.providers.local import LocalRemover  # noqa: E402
from imaging.matting import MODEL_SIZE, normalize_prediction  # noqa: E402

# The shared data folder sits beside the project checkout.
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "segmentation" / "dev"
_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


@dataclass
class Scores:
    iou: float
    mae: float
    bf: float
    ms: float
    cpu_ms: float = 0.0


def load_pairs(data: Path, scale: float) -> list[tuple[str, Image.Image, np.ndarray]]:
    """(name, RGB photo, boolean ground truth) for every photo with a mask, sorted by name."""
    pairs = []
    for photo in sorted(data.glob("*.jpg")):
        mask_path = photo.with_name(f"{photo.stem}.mask.png")
        if not mask_path.exists():
            continue
        image = Image.open(photo).convert("RGB")
        gt = Image.open(mask_path).convert("L")
        if scale != 1:
            size = (round(image.width * scale), round(image.height * scale))
            image = image.resize(size, Image.Resampling.BICUBIC)
            gt = gt.resize(size, Image.Resampling.BILINEAR)
        pairs.append((photo.stem, image, np.asarray(gt) > 127))
    return pairs


def difficulties(data: Path) -> dict[str, str]:
    manifest = data / "MANIFEST.csv"
    if not manifest.exists():
        return {}
    with manifest.open(newline="") as handle:
        return {row["name"]: row.get("difficulty", "") for row in csv.DictReader(handle)}


def readme_alpha(session, image: Image.Image) -> Image.Image:
    """The plain recipe from the model README, nothing added."""
    x = np.asarray(image.resize((MODEL_SIZE,) * 2, Image.Resampling.LANCZOS), dtype=np.float32)
    x = ((x / max(float(x.max()), 1e-6)) - _MEAN) / _STD
    feed = {session.get_inputs()[0].name: x.transpose(2, 0, 1)[None].astype(np.float32)}
    pred = normalize_prediction(session.run(None, feed)[0][0, 0])
    small = Image.fromarray((pred * 255).astype(np.uint8))
    return small.resize(image.size, Image.Resampling.LANCZOS)


def full_alpha(seg, size: tuple[int, int]) -> Image.Image:
    """The soft alpha at source size, rebuilt from the cutout (cutout()'s default margin)."""
    left, top, right, bottom = seg.bbox
    pad = round(0.02 * max(right - left, bottom - top))
    x0, y0 = max(0, left - pad), max(0, top - pad)
    assert seg.cutout.size == (min(size[0], right + pad) - x0, min(size[1], bottom + pad) - y0)
    alpha = Image.new("L", size, 0)
    alpha.paste(seg.cutout.getchannel("A"), (x0, y0))
    return alpha


def boundary_f(pred: np.ndarray, gt: np.ndarray) -> float:
    """F-measure of boundary pixels matched within 0.0075 x diagonal (square window)."""
    tol = max(1, round(0.0075 * float(np.hypot(*gt.shape))))
    bp, bg = _boundary(pred), _boundary(gt)
    if not bp.any() or not bg.any():
        return float(bp.any() == bg.any())
    near_p, near_g = _dilate(bp, tol), _dilate(bg, tol)
    precision = (bp & near_g).sum() / bp.sum()
    recall = (bg & near_p).sum() / bg.sum()
    return 0.0 if precision + recall == 0 else float(2 * precision * recall / (precision + recall))


def _boundary(mask: np.ndarray) -> np.ndarray:
    image = Image.fromarray(mask.astype(np.uint8) * 255)
    return mask & (np.asarray(image.filter(ImageFilter.MinFilter(3))) == 0)


def _dilate(mask: np.ndarray, radius: int) -> np.ndarray:
    """Square dilation from a summed-area table (a rank filter is far too slow at this size)."""
    h, w = mask.shape
    table = np.zeros((h + 1, w + 1), dtype=np.int64)
    table[1:, 1:] = mask.astype(np.int64).cumsum(0).cumsum(1)
    y0 = np.clip(np.arange(h) - radius, 0, h)[:, None]
    y1 = np.clip(np.arange(h) + radius + 1, 0, h)[:, None]
    x0 = np.clip(np.arange(w) - radius, 0, w)[None, :]
    x1 = np.clip(np.arange(w) + radius + 1, 0, w)[None, :]
    return (table[y1, x1] - table[y0, x1] - table[y1, x0] + table[y0, x0]) > 0


def score(alpha: Image.Image, gt: np.ndarray, ms: float, cpu_ms: float = 0.0) -> Scores:
    a = np.asarray(alpha, dtype=np.float32) / 255.0
    pred = a >= 0.5
    union = (pred | gt).sum()
    iou = 1.0 if union == 0 else float((pred & gt).sum() / union)
    return Scores(iou, float(np.abs(a - gt).mean()), boundary_f(pred, gt), ms, cpu_ms)


def summary(label: str, rows: list[Scores]) -> str:
    ious = [r.iou for r in rows]
    return (
        f"{label:9s} mean IoU {statistics.mean(ious):.4f}  median IoU {statistics.median(ious):.4f}"
        f"  MAE {statistics.mean(r.mae for r in rows):.4f}"
        f"  boundary F {statistics.mean(r.bf for r in rows):.4f}"
        f"  ms/image {statistics.median(r.ms for r in rows):.0f} (median)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    env_data = os.environ.get("PACKSHOT_SEGMENTATION_DATA")
    parser.add_argument("--data", type=Path, default=Path(env_data) if env_data else DEFAULT_DATA)
    parser.add_argument("--baseline", action="store_true", help="also run the README recipe")
    parser.add_argument("--hard", action="store_true", help="also run the built hard cases")
    parser.add_argument("--threads", type=int, default=1, help="onnxruntime intra-op threads")
    parser.add_argument("--scale", type=float, default=1.0, help="enlarge photos by this factor")
    args = parser.parse_args()

    sets = {"dev": load_pairs(args.data, args.scale)}
    if not sets["dev"]:
        sys.exit(f"no NAME.jpg + NAME.mask.png pairs in {args.data}")
    if args.hard:
        sets["hard"] = list(hard_cases(args.data if args.data.is_dir() else None))
    level = difficulties(args.data)
    remover = LocalRemover(threads=args.threads)
    remover.remove(sets["dev"][0][1])  # load the session and warm up outside the timings

    head = f"{'image':26s} {'level':6s} {'size':>9s} {'IoU':>6s} {'MAE':>6s} {'BF':>6s}"
    head += f" {'ms':>5s} zoom"
    print(head + ("   base IoU   MAE     BF    ms" if args.baseline else ""))
    results: dict[str, tuple[list[Scores], list[Scores]]] = {}
    for label, pairs in sets.items():
        results[label] = run_set(remover, pairs, level, baseline=args.baseline)
    print()
    result = "result:"
    for label, (ours, base) in results.items():
        if base:
            print(summary(f"{label} base", base))
        print(summary(f"{label} local", ours))
        result += " " + result_fields(label, ours, base)
    print(result + f" images={sum(len(pairs) for pairs in sets.values())}")


def run_set(
    remover: LocalRemover,
    pairs: list[tuple[str, Image.Image, np.ndarray]],
    level: dict[str, str],
    *,
    baseline: bool,
) -> tuple[list[Scores], list[Scores]]:
    """Score ``remover`` (and the plain recipe when ``baseline``) on every pair, printing rows."""
    ours: list[Scores] = []
    base: list[Scores] = []
    for name, image, gt in pairs:
        started, cpu = time.perf_counter(), time.process_time()
        seg = remover.remove(image)
        ms = (time.perf_counter() - started) * 1000
        cpu_ms = (time.process_time() - cpu) * 1000
        alpha = full_alpha(seg, image.size)
        assert np.array_equal(np.asarray(seg.mask) >= 128, np.asarray(alpha) >= 128)
        r = score(alpha, gt, ms, cpu_ms)
        ours.append(r)
        size = f"{image.width}x{image.height}"
        zoom = "yes" if seg.details.get("zoom") else "no"
        line = (
            f"{name:26s} {level.get(name, ''):6s} {size:>9s}"
            f" {r.iou:6.3f} {r.mae:6.3f} {r.bf:6.3f} {r.ms:5.0f} {zoom:4s}"
        )
        if baseline:
            started = time.perf_counter()
            plain = readme_alpha(remover.session(), image)
            base.append(score(plain, gt, (time.perf_counter() - started) * 1000))
            b = base[-1]
            line += f"   {b.iou:6.3f} {b.mae:6.3f} {b.bf:6.3f} {b.ms:5.0f}"
        print(line, flush=True)
    return ours, base


def result_fields(label: str, ours: list[Scores], base: list[Scores]) -> str:
    """The ``result:`` fields of one set; ``worst_loss`` is the largest IoU lost to the baseline."""
    ious = [r.iou for r in ours]
    fields = (
        f"{label}_mean_iou={statistics.mean(ious):.3f} {label}_median_iou={statistics.median(ious):.3f}"
        f" {label}_ms_per_image={statistics.median(r.ms for r in ours):.0f}"
        f" {label}_cpu_ms_per_image={statistics.median(r.cpu_ms for r in ours):.0f}"
        f" {label}_mean_mae={statistics.mean(r.mae for r in ours):.4f}"
        f" {label}_mean_boundary_f={statistics.mean(r.bf for r in ours):.3f}"
    )
    if base:
        base_ious = [r.iou for r in base]
        worst = max(b.iou - r.iou for b, r in zip(base, ours, strict=True))
        fields += (
            f" {label}_baseline_mean_iou={statistics.mean(base_ious):.3f}"
            f" {label}_baseline_median_iou={statistics.median(base_ious):.3f}"
            f" {label}_worst_loss_to_baseline={worst:.3f}"
        )
    return fields


if __name__ == "__main__":
    main()

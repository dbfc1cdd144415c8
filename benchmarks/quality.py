"""Does the mask gate flag bad cut-outs and pass good ones, and what CPU does it add?

Runs the real ``LocalRemover`` over the segmentation dev set and the built hard cases
(``benchmarks/_hardcases.py``), scores each cut-out against its exact ground truth (IoU of
alpha >= 128) and runs the mask checks of ``imaging.quality`` with the thresholds of
``core.settings.Settings`` (``PACKSHOT_QUALITY_*``, so a changed environment is measured as is).
A cut-out is bad below IoU 0.85 and good at 0.95 or above (in between it is neither). Reports,
per set and overall, how many bad ones the gate flags (target >= 80 %) and how many good ones it
flags by mistake (target <= 20 %), which check flagged what, and the process CPU the checks add
per photo relative to the segmentation's own CPU (target <= 10 %). ``--agreement`` also runs
the mirrored-view agreement check (``PACKSHOT_QUALITY_AGREEMENT_MIN``, 0.9 when that is 0 = off),
whose second look is one more model pass (the plain recipe), and reports its flags and cost apart.

    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python benchmarks/quality.py [--data DIR] [--agreement]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks._hardcases import hard_cases  # noqa: E402
from benchmarks.segmentation import DEFAULT_DATA, full_alpha, load_pairs, readme_alpha  # noqa: E402
from core.providers.local import LocalRemover  # noqa: E402
from core.settings import Settings  # noqa: E402
from imaging.quality import Check, mask_checks, view_agreement  # noqa: E402

BAD, GOOD = 0.85, 0.95


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    env_data = os.environ.get("PACKSHOT_SEGMENTATION_DATA")
    parser.add_argument("--data", type=Path, default=Path(env_data) if env_data else DEFAULT_DATA)
    parser.add_argument("--agreement", action="store_true", help="also run view agreement")
    parser.add_argument("--dump", type=Path, help="write every check's value as JSON here")
    args = parser.parse_args()

    sets = {"dev": load_pairs(args.data, 1.0)}
    if not sets["dev"]:
        sys.exit(f"no NAME.jpg + NAME.mask.png pairs in {args.data}")
    sets["hard"] = list(hard_cases(args.data))
    settings = Settings()
    limits = settings.quality_mask_thresholds
    remover = LocalRemover(threads=1)
    remover.remove(sets["dev"][0][1])  # load the session outside the timings

    def second_look(image: Image.Image) -> Image.Image:
        return readme_alpha(remover.session(), image)

    rows = []
    print(f"{'image':26s} {'IoU':>6s} {'kind':5s} {'seg ms':>7s} {'chk ms':>6s}  failed checks")
    for label, pairs in sets.items():
        for name, image, gt in pairs:
            cpu = time.process_time()
            seg = remover.remove(image)
            seg_cpu = time.process_time() - cpu
            alpha = full_alpha(seg, image.size)
            cpu = time.process_time()
            checks = mask_checks(alpha, limits)
            check_cpu = time.process_time() - cpu
            agree_cpu = 0.0
            if args.agreement:
                cpu = time.process_time()
                checks.append(
                    view_agreement(
                        image, alpha, second_look, min_iou=settings.quality_agreement_min or 0.9
                    )
                )
                agree_cpu = time.process_time() - cpu
            iou = _iou(np.asarray(alpha) >= 128, gt)
            kind = "bad" if iou < BAD else "good" if iou >= GOOD else "-"
            failed = [c.name for c in checks if not c.passed]
            rows.append((label, name, iou, kind, seg_cpu, check_cpu, agree_cpu, checks))
            print(
                f"{name:26s} {iou:6.3f} {kind:5s} {seg_cpu * 1000:7.0f} {check_cpu * 1000:6.1f}"
                f"  {' '.join(failed)}",
                flush=True,
            )
    if args.dump:
        dump = [
            {"set": r[0], "name": r[1], "iou": r[2], "checks": {c.name: c.value for c in r[7]}}
            for r in rows
        ]
        args.dump.write_text(json.dumps(dump, indent=1))
    print()
    print(report(rows, agreement=args.agreement))


def report(rows: list, *, agreement: bool) -> str:
    """Per-set and overall flag rates, the checks that flagged, the CPU ratio; a result line."""
    lines, fields = [], []
    groups = {
        "dev": [r for r in rows if r[0] == "dev"],
        "hard": [r for r in rows if r[0] == "hard"],
    }
    groups["all"] = rows
    for label, group in groups.items():
        bad = [r for r in group if r[3] == "bad"]
        good = [r for r in group if r[3] == "good"]
        bad_flagged = sum(_flagged(r[7], agreement=False) for r in bad)
        good_flagged = sum(_flagged(r[7], agreement=False) for r in good)
        lines.append(
            f"{label:4s}: flags {bad_flagged}/{len(bad)} bad, {good_flagged}/{len(good)} good"
        )
        fields += [
            f"{label}_bad={len(bad)} {label}_bad_flagged={bad_flagged}",
            f"{label}_good={len(good)} {label}_good_flagged={good_flagged}",
        ]
    by_check: Counter[str] = Counter()
    for r in rows:
        for c in r[7]:
            if not c.passed:
                by_check[f"{c.name}:{r[3]}"] += 1
    lines.append(
        "failed checks by kind of cut-out: "
        + ", ".join(sorted(f"{k}={v}" for k, v in by_check.items()))
    )
    bad = [r for r in rows if r[3] == "bad"]
    good = [r for r in rows if r[3] == "good"]
    bad_rate = sum(_flagged(r[7], agreement=False) for r in bad) / max(1, len(bad))
    good_rate = sum(_flagged(r[7], agreement=False) for r in good) / max(1, len(good))
    cpu_ratio = statistics.median(r[5] / r[4] for r in rows)
    lines.append(
        f"checks CPU / segmentation CPU per photo: median {cpu_ratio:.1%}"
        f" (checks {statistics.median(r[5] for r in rows) * 1000:.1f} ms,"
        f" segmentation {statistics.median(r[4] for r in rows) * 1000:.0f} ms)"
    )
    fields += [
        f"bad_flagged_rate={bad_rate:.2f} good_flagged_rate={good_rate:.2f}",
        f"check_cpu_ratio={cpu_ratio:.3f}",
    ]
    if agreement:
        with_agree_bad = sum(_flagged(r[7], agreement=True) for r in bad) / max(1, len(bad))
        with_agree_good = sum(_flagged(r[7], agreement=True) for r in good) / max(1, len(good))
        agree_ratio = statistics.median(r[6] / r[4] for r in rows)
        lines.append(
            f"with view agreement: flags {with_agree_bad:.0%} of bad, {with_agree_good:.0%} of good;"
            f" its CPU / segmentation CPU: median {agree_ratio:.1%}"
        )
        fields += [
            f"agreement_bad_flagged_rate={with_agree_bad:.2f}",
            f"agreement_good_flagged_rate={with_agree_good:.2f} agreement_cpu_ratio={agree_ratio:.3f}",
        ]
    lines.append("result: " + " ".join(fields) + f" images={len(rows)}")
    return "\n".join(lines)


def _flagged(checks: list[Check], *, agreement: bool) -> bool:
    return any(not c.passed for c in checks if agreement or c.name != "view_agreement")


def _iou(pred: np.ndarray, gt: np.ndarray) -> float:
    union = int((pred | gt).sum())
    return 1.0 if union == 0 else float((pred & gt).sum()) / union


if __name__ == "__main__":
    main()

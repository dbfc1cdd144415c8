"""Step 5: check what the pipeline made before anything is published: the quality object.

No ground truth exists at run time, so every check looks at the job's own outputs:

- the cut-out's alpha (``imaging.quality.mask_checks``: soft alpha, the frame, the product's
  share, separate parts, thin strokes), thresholds from ``PACKSHOT_QUALITY_*``;
- product-pixel fidelity of every composite (the product shows the cut-out's own pixels after
  ``imaging.composite.place``'s resize: a background provider can never alter it);
- the rules of each channel the theme targets (``white``: a marketplace main image);
- every derivative is exactly the size and format its asset row (and so the manifest) claims.

The verdict is stored on the job and in the step's details; the flow decides what it does
(``PACKSHOT_REVIEW``). A check that cannot pass is a verdict, never a step failure.
"""

from __future__ import annotations

import uuid
from functools import partial

from PIL import Image
from sqlmodel import Session

from core import jobs, review
from core.context import JobContext
from core.schemas import QualityReport
from core.tables import AssetKind, Step
from imaging.codec import decode
from imaging.compliance import derivative_matches, product_fidelity, white_compliance
from imaging.composite import place
from imaging.quality import Check, mask_checks, source_alpha, summarise
from tasks._runtime import decode_from_store, run_in_db, settings, store
from tasks.remove_background import CutoutRef
from tasks.step import StepRecord, step

__all__ = ["check_quality"]


@step(Step.QUALITY, timeout_s=300)
def check_quality(
    ctx: JobContext, record: StepRecord, cutout: CutoutRef, composites: list[str]
) -> QualityReport:
    """Run every check on the job's outputs; returns (and stores) the quality object.

    Args:
        ctx: the job (its theme's fill, shadow and channels).
        record: this attempt's step row.
        cutout: the cut-out and mask keys.
        composites: the master composites' keys, in variant order.
    """
    s = settings()
    product = decode_from_store(cutout.cutout_key)
    alpha = source_alpha(product, decode_from_store(cutout.mask_key))
    checks = mask_checks(alpha, s.quality_mask_thresholds)
    checks += _composite_checks(ctx, product, composites)
    checks += _derivative_checks(ctx)
    report = QualityReport.from_checks(summarise(checks))
    run_in_db(partial(review.set_quality, job_id=ctx.job_id, report=report), what="quality")
    record.provider = "packshot"
    record.details = {
        "verdict": report.verdict,
        "score": report.score,
        "checks": len(report.checks),
        "failed": [c.name for c in report.failed()],
    }
    return report


def _composite_checks(ctx: JobContext, product: Image.Image, composites: list[str]) -> list[Check]:
    """Fidelity of each composite, and each target channel's rules, named by variant."""
    theme, found = ctx.theme, []
    marketplace = "marketplace-main" in theme.channels
    limit, max_pixels = settings().quality_fidelity_max_error, settings().max_source_pixels
    placement = None
    for variant, key in enumerate(composites, start=1):
        data = store().get(key)
        master = decode(data, max_pixels=max_pixels, min_side=1)
        if placement is None or placement.canvas != master.width:
            # The placement the composite step made (deterministic from the cut-out). Its
            # shadow, a large blur, is only needed to tell background from shadow for a
            # marketplace's pure-white rule.
            placement = place(
                product,
                master.width,
                fill=theme.fill,
                max_upscale=theme.max_upscale,
                shadow=theme.shadow.to_imaging() if marketplace else None,
            )
        found.append(_numbered(product_fidelity(master, placement, max_error=limit), variant))
        if marketplace:
            found += [_numbered(c, variant) for c in white_compliance(data, placement)]
    return found


def _derivative_checks(ctx: JobContext) -> list[Check]:
    """One check over all derivatives: each file is what its asset row claims."""
    rows = run_in_db(partial(_derivative_rows, job_id=ctx.job_id), what="derivative rows")
    wrong = []
    for key, width, height, fmt in rows:
        check = derivative_matches(store().get(key), width=width, height=height, fmt=fmt)
        if not check.passed:
            wrong.append(f"{key.rsplit('/', 1)[-1]}: {check.detail}")
    if wrong:
        detail = "; ".join(wrong[:3]) + (f" (and {len(wrong) - 3} more)" if len(wrong) > 3 else "")
    else:
        detail = f"all {len(rows)} derivatives have the size and format the manifest claims"
    ok = float(len(rows) - len(wrong))
    return [Check("derivatives", ok, float(len(rows)), not wrong, detail)]


def _derivative_rows(session: Session, *, job_id: uuid.UUID) -> list[tuple[str, int, int, str]]:
    return [
        (a.key, a.width or 0, a.height or 0, a.format or "")
        for a in jobs.list_assets(session, job_id=job_id)
        if a.kind == AssetKind.DERIVATIVE
    ]


def _numbered(check: Check, variant: int) -> Check:
    """``check`` named for the composite it looked at (``product_fidelity#2``)."""
    return Check(
        f"{check.name}#{variant}", check.value, check.threshold, check.passed, check.detail
    )

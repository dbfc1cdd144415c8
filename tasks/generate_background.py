"""Step 2: render the theme's background variants: ``backgrounds/{theme}/{sku}/{sha}_{n}.jpg``."""

from __future__ import annotations

from core.context import JobContext
from core.keys import background_key
from core.providers.base import GeneratedBackground
from core.providers.registry import new_generator
from core.tables import AssetKind, JobStatus, Step
from tasks._limits import freepik_limits
from tasks._runtime import describe_stored, put_image, settings
from tasks.step import StepRecord, step

__all__ = ["generate_backgrounds"]

# Backgrounds are masters' raw material: keep them near-lossless.
BACKGROUND_QUALITY = 92


def variant_seed(sha256: str, n: int) -> int:
    """A stable per-image, per-variant seed (dither noise, AI generators that take one)."""
    return (int(sha256[:8], 16) + n) % 2**31


@step(Step.GENERATE_BACKGROUNDS, timeout_s=600)
def generate_backgrounds(ctx: JobContext, record: StepRecord) -> list[str]:
    """Render every background variant of the job's theme at the master size; returns their keys.

    Args:
        ctx: the job (its theme's variants; ``rerender`` renders again even when stored).
        record: this attempt's step row.
    """
    s, theme = settings(), ctx.theme
    keys = [
        background_key(theme.name, ctx.sku, ctx.sha256, n)
        for n in range(1, len(theme.variants) + 1)
    ]
    record.advance_to = JobStatus.BACKGROUND_READY
    generator = new_generator(s)
    by_variant: dict[str, dict[str, object]] = {}
    for n, (key, variant) in enumerate(zip(keys, theme.variants, strict=True), start=1):
        existing = None if ctx.rerender else describe_stored(key, AssetKind.BACKGROUND, variant=n)
        if existing is not None and existing.width == s.master_size:
            record.assets.append(existing)
            continue
        if not theme.ai_allowed and variant.prompt:
            variant = variant.model_copy(update={"prompt": None})  # e.g. white: never AI
        with freepik_limits():
            result = generator.generate(variant, s.master_size, seed=variant_seed(ctx.sha256, n))
        by_variant[str(n)] = _described(result)
        record.assets.append(
            put_image(
                key,
                result.image,
                "jpeg",
                kind=AssetKind.BACKGROUND,
                quality=BACKGROUND_QUALITY,
                variant=n,
            )
        )
        record.cost_usd += result.cost_usd
    providers = dict.fromkeys(str(v["provider"]) for v in by_variant.values())
    record.provider = "+".join(providers) or None
    record.skipped = not by_variant
    record.details = {"variants": len(keys), "rendered": len(by_variant), "size": s.master_size}
    if by_variant:
        record.details["by_variant"] = by_variant
    return keys


def _described(result: GeneratedBackground) -> dict[str, object]:
    """Provider, cost and the provider's own details of one rendered variant."""
    return {**result.details, "provider": result.provider, "cost_usd": result.cost_usd}

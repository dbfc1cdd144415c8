"""Step 2: render the theme's background variants: ``backgrounds/{theme}/{sku}/{sha}_{n}.jpg``."""

from __future__ import annotations

from prefect import task

from core.keys import background_key
from core.providers.base import GeneratedBackground
from core.providers.registry import new_generator
from core.tables import AssetKind, JobStatus, Step
from core.themes import resolve_theme
from tasks._hooks import tracked
from tasks._limits import freepik_limits
from tasks._policy import STEP_OPTIONS
from tasks._runtime import describe_stored, put_image, settings

__all__ = ["generate_backgrounds"]

# Backgrounds are masters' raw material: keep them near-lossless.
BACKGROUND_QUALITY = 92


def variant_seed(sha256: str, n: int) -> int:
    """A stable per-image, per-variant seed (dither noise, AI generators that take one)."""
    return (int(sha256[:8], 16) + n) % 2**31


@task(name="generate_backgrounds", timeout_seconds=600, **STEP_OPTIONS)
def generate_backgrounds(
    job_id: str, sku: str, sha256: str, theme: str, force: bool = False
) -> list[str]:
    """Render every background variant of ``theme`` at the master size; returns their keys.

    Args:
        job_id: the job this step belongs to.
        sku: product SKU.
        sha256: SHA-256 of the source bytes.
        theme: theme name.
        force: render again even when the backgrounds exist.
    """
    s = settings()
    spec = resolve_theme(theme, s.themes_file)
    keys = [background_key(theme, sku, sha256, n) for n in range(1, len(spec.variants) + 1)]
    with tracked(job_id, Step.GENERATE_BACKGROUNDS) as record:
        record.advance_to = JobStatus.BACKGROUND_READY
        generator = new_generator(s)
        made = 0
        by_variant: dict[str, dict[str, object]] = {}
        for n, (key, variant) in enumerate(zip(keys, spec.variants, strict=True), start=1):
            existing = None if force else describe_stored(key, AssetKind.BACKGROUND, variant=n)
            if existing is not None and existing.width == s.master_size:
                record.assets.append(existing)
                continue
            if not spec.ai_allowed and variant.prompt:
                variant = variant.model_copy(update={"prompt": None})  # e.g. white: never AI
            with freepik_limits():
                result = generator.generate(variant, s.master_size, seed=variant_seed(sha256, n))
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
            made += 1
        providers = dict.fromkeys(str(v["provider"]) for v in by_variant.values())
        record.provider = "+".join(providers) or None
        record.skipped = made == 0
        record.details = {"variants": len(keys), "rendered": made, "size": s.master_size}
        if by_variant:
            record.details["by_variant"] = by_variant
        return keys


def _described(result: GeneratedBackground) -> dict[str, object]:
    """Provider, cost and the provider's own details of one rendered variant."""
    return {**result.details, "provider": result.provider, "cost_usd": result.cost_usd}

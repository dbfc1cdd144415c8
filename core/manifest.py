"""The JSON manifest written last for every (sku, sha256, theme): models and a pure builder.

Keeps the original system's fields (sku, sha256, theme, timestamp, assets.{original, cutout,
mask, backgrounds, composites, derivatives}, metadata.{totalAssets, totalFileSize,
processingTime, cost}) and adds, for every file: key, width, height, bytes, content type and
sha256. Sizes and times are numbers: bytes, milliseconds, USD.

The manifest is written before the publish step (its presence means the asset set is complete).
When a publisher puts the images on the storefront, the publish step rewrites the same key with
a ``shopify`` section added (product, variant and media ids); it stays ``null`` while nothing
has been published (publisher ``none``, or publishing has not succeeded yet).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime

from pydantic import ConfigDict, Field, field_validator

from core.schemas import CamelModel, QualityReport
from core.tables import Asset, AssetKind, JobStep
from core.urls import redact_url

__all__ = ["Manifest", "ManifestFile", "ManifestShopify", "build_manifest"]


class _Camel(CamelModel):
    model_config = ConfigDict(frozen=True)


class ManifestFile(_Camel):
    """One stored file, read from its ``Asset`` row (the fields keep the published order)."""

    key: str
    width: int | None = None
    height: int | None = None
    bytes: int
    content_type: str
    sha256: str | None = None
    variant: int | None = None
    size: str | None = None
    format: str | None = None
    provider: str | None = None


class ManifestOriginal(ManifestFile):
    """The source image; ``url`` has credentials and query values redacted."""

    url: str


class ManifestAssets(_Camel):
    """Every file of the set, grouped as the original system grouped them."""

    original: ManifestOriginal | None
    cutout: ManifestFile | None
    mask: ManifestFile | None
    backgrounds: list[ManifestFile]
    composites: list[ManifestFile]
    derivatives: list[ManifestFile]


class ManifestStep(_Camel):
    """Time and cost of one step, read from its ``JobStep`` row."""

    step: str
    variant: int = 0
    state: str
    ms: float | None = Field(validation_alias="duration_ms")
    cost_usd: float
    provider: str | None
    attempts: int
    details: dict[str, object] | None = Field(
        None, description="what the step reported: model, fallback reason, per-variant providers"
    )

    @field_validator("details", mode="before")
    @classmethod
    def _parse(cls, value: object) -> object:
        # The row keeps the details as JSON text; a manifest read back has them as an object.
        return _details(value) if isinstance(value, str) else value


class ManifestMetadata(_Camel):
    """Totals."""

    total_assets: int = Field(description="cutout, mask, backgrounds, composites, derivatives")
    total_file_size: int = Field(description="bytes of those files")
    processing_time: float = Field(description="milliseconds, sum of the steps' times")
    cost: float = Field(description="USD spent on this job so far")


class ManifestShopify(_Camel):
    """Where the images went in Shopify (``gid://shopify/...`` ids), added after publishing."""

    product_id: str
    variant_id: str | None = None
    media_ids: list[str] = Field(description="this job's media, in background-variant order")
    created: list[str] = Field(default_factory=list, description="added by the last publish")
    kept: list[str] = Field(default_factory=list, description="already there: a replay")
    removed: list[str] = Field(default_factory=list, description="ours, for an earlier photo")
    published_at: datetime


class Manifest(_Camel):
    """The manifest document."""

    sku: str
    sha256: str
    theme: str
    timestamp: datetime
    assets: ManifestAssets
    steps: list[ManifestStep]
    metadata: ManifestMetadata
    quality: QualityReport | None = None
    shopify: ManifestShopify | None = None


def build_manifest(
    *,
    sku: str,
    sha256: str,
    theme: str,
    source_url: str,
    assets: Sequence[Asset],
    steps: Sequence[JobStep],
    cost_usd: float,
    timestamp: datetime,
    quality: QualityReport | None = None,
) -> Manifest:
    """Assemble the manifest from the job's asset and step rows (no I/O)."""
    providers = {
        AssetKind.CUTOUT: _provider(steps, "remove_background"),
        AssetKind.MASK: _provider(steps, "remove_background"),
        AssetKind.BACKGROUND: _provider(steps, "generate_backgrounds"),
    }
    by_kind: dict[str, list[ManifestFile]] = {kind: [] for kind in AssetKind}
    per_variant = _background_providers(steps)
    for asset in sorted(assets, key=lambda a: (a.variant or 0, a.key)):
        provider = providers.get(asset.kind)
        if asset.kind == AssetKind.BACKGROUND and asset.variant in per_variant:
            provider = per_variant[asset.variant]
        entry = ManifestFile.model_validate(asset).model_copy(update={"provider": provider})
        by_kind[asset.kind].append(entry)
    original = by_kind[AssetKind.ORIGINAL][:1]
    group = ManifestAssets(
        original=ManifestOriginal(url=redact_url(source_url), **original[0].model_dump())
        if original
        else None,
        cutout=next(iter(by_kind[AssetKind.CUTOUT]), None),
        mask=next(iter(by_kind[AssetKind.MASK]), None),
        backgrounds=by_kind[AssetKind.BACKGROUND],
        composites=by_kind[AssetKind.COMPOSITE],
        derivatives=by_kind[AssetKind.DERIVATIVE],
    )
    counted = [
        f
        for kind in (AssetKind.CUTOUT, AssetKind.MASK, AssetKind.BACKGROUND, AssetKind.COMPOSITE)
        for f in by_kind[kind]
    ] + by_kind[AssetKind.DERIVATIVE]
    return Manifest(
        sku=sku,
        sha256=sha256,
        theme=theme,
        timestamp=timestamp,
        assets=group,
        steps=[ManifestStep.model_validate(row) for row in steps],
        metadata=ManifestMetadata(
            total_assets=len(counted),
            total_file_size=sum(f.bytes for f in counted),
            processing_time=round(sum(row.duration_ms or 0.0 for row in steps), 1),
            cost=round(cost_usd, 6),
        ),
        quality=quality,
    )


def _provider(steps: Sequence[JobStep], step: str) -> str | None:
    return next((row.provider for row in steps if row.step == step and row.provider), None)


def _details(text: str | None) -> dict[str, object] | None:
    """A step row's ``details`` JSON as an object; None when absent or not an object."""
    try:
        details = json.loads(text) if text else None
    except json.JSONDecodeError:
        return None
    return details if isinstance(details, dict) else None


def _background_providers(steps: Sequence[JobStep]) -> dict[int, str]:
    """Variant → provider, when the background step rendered variants with different ones."""
    row = next((r for r in steps if r.step == "generate_backgrounds"), None)
    by_variant = (_details(row.details) or {}).get("by_variant") if row is not None else None
    if not isinstance(by_variant, dict):
        return {}
    return {
        int(n): str(entry["provider"])
        for n, entry in by_variant.items()
        if str(n).isdigit() and isinstance(entry, dict) and entry.get("provider")
    }

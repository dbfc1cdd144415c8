"""The read-only half of the Shopify publisher: find the variant, sort the product's media.

Both ``publish`` and ``plan`` (the dry run) start here, so they always agree on what exists.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from core.clients.shopify_admin import ProductMedia, ShopifyAdmin, VariantMatch
from core.errors import ConfigurationError, PublishError
from core.publishers._marker import MediaIdentity, alt_text
from core.publishers.base import PublishImage, PublishRequest

__all__ = ["Survey", "Wanted", "find_variant", "match", "media_inputs", "take_survey"]


@dataclass(frozen=True)
class Wanted:
    """One composite to show, with its identity and alt text."""

    image: PublishImage
    identity: MediaIdentity
    alt: str


@dataclass
class Survey:
    """The variant, the composites wanted, and Packshot's media already on the product.

    Attributes:
        kept: variant number → our media for exactly this photo (a replay keeps them).
        stale: our media for this SKU and theme that show another photo, repeat a variant,
            or FAILED; removed once the new ones are READY and on the variant.
    """

    variant: VariantMatch
    wanted: list[Wanted]
    kept: dict[int, ProductMedia] = field(default_factory=dict)
    stale: list[ProductMedia] = field(default_factory=list)

    @property
    def missing(self) -> list[Wanted]:
        """The composites that are not on the product yet."""
        return [w for w in self.wanted if w.identity.n not in self.kept]


def find_variant(
    admin: ShopifyAdmin, sku: str, *, attempts: int, delay_s: float, sleep: Callable[[float], None]
) -> VariantMatch:
    """The one variant whose SKU is exactly ``sku``.

    The search is tokenised (``ABC-1`` also finds ``ABC-10``) and its index lags behind edits,
    so only exact matches count and an empty answer is asked again ``attempts`` times.

    Raises:
        PublishError: permanent "product not found in Shopify" after the last search.
        ConfigurationError: several variants carry the SKU; nothing is guessed.
    """
    for attempt in range(1, attempts + 1):
        exact = [v for v in admin.variants_by_sku(sku) if v.sku == sku]
        if len(exact) == 1:
            return exact[0]
        if len(exact) > 1:
            products = ", ".join(sorted({v.product_id for v in exact}))
            raise ConfigurationError(
                f"SKU {sku!r} is on {len(exact)} variants in Shopify ({products}); "
                "make it unique there: nothing was published"
            )
        if attempt < attempts:
            sleep(delay_s)
    raise PublishError(
        f"product not found in Shopify: no variant has SKU {sku!r} ({attempts} searches)",
        permanent=True,
    )


def take_survey(
    admin: ShopifyAdmin, request: PublishRequest, variant: VariantMatch, alt_template: str
) -> Survey:
    """Sort the product's media into ours-to-keep and ours-to-remove; ignore everything else."""
    wanted = []
    for image in request.images:
        identity = MediaIdentity.of(request.sku, request.theme, request.sha256, image.variant)
        alt = alt_text(alt_template, identity, title=variant.product_title)
        wanted.append(Wanted(image, identity, alt))
    result = Survey(variant=variant, wanted=wanted)
    identities = {w.identity for w in wanted}
    for media in admin.product_media(variant.product_id):
        found = MediaIdentity.parse(media.alt)
        if found is None or not found.same_slot(request.sku, request.theme):
            continue  # not ours, or another SKU's or theme's: never touched
        if found in identities and media.status != "FAILED" and found.n not in result.kept:
            result.kept[found.n] = media
        else:
            result.stale.append(media)
    return result


def media_inputs(wanted: list[Wanted], sources: list[str]) -> list[dict[str, str]]:
    """``CreateMediaInput`` for each composite and its ``originalSource``."""
    return [
        {"originalSource": source, "alt": w.alt, "mediaContentType": "IMAGE"}
        for w, source in zip(wanted, sources, strict=True)
    ]


def match(media: list[ProductMedia], wanted: list[Wanted]) -> dict[int, str]:
    """Variant number → id of the newest non-FAILED media carrying each wanted marker."""
    identities = {w.identity for w in wanted}
    found: dict[int, str] = {}
    for item in media:
        identity = MediaIdentity.parse(item.alt)
        if identity is not None and identity in identities and item.status != "FAILED":
            found[identity.n] = item.id
    return found

"""The ``Publisher`` protocol and its models: what to publish, what happened, what would happen.

A publisher puts a job's master composites (one per background variant) on the storefront.
``publish`` changes the store; ``plan`` only reads it and lists the mutations ``publish``
would send (``packshot publish JOB --dry-run``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from core.manifest import Manifest

__all__ = [
    "PlannedMutation",
    "PublishImage",
    "PublishPlan",
    "PublishRequest",
    "PublishResult",
    "Publisher",
]


@dataclass(frozen=True)
class PublishImage:
    """One master composite: its store key and background variant (from 1)."""

    key: str
    variant: int
    content_type: str = "image/jpeg"


@dataclass(frozen=True)
class PublishRequest:
    """The images of one (sku, sha256, theme), in variant order."""

    sku: str
    sha256: str
    theme: str
    images: tuple[PublishImage, ...]

    @classmethod
    def from_manifest(cls, manifest: Manifest) -> PublishRequest:
        """The composites the manifest lists."""
        images = sorted(
            (
                PublishImage(key=f.key, variant=f.variant or 1, content_type=f.content_type)
                for f in manifest.assets.composites
            ),
            key=lambda image: image.variant,
        )
        return cls(
            sku=manifest.sku, sha256=manifest.sha256, theme=manifest.theme, images=tuple(images)
        )


@dataclass(frozen=True)
class PublishResult:
    """What a publish did; ids are the storefront's (``gid://shopify/...``).

    Attributes:
        publisher: the publisher's name.
        product_id: the product the images went to (None when publishing is disabled).
        variant_id: the variant whose image is the first composite.
        media_ids: the media of this job, in variant order.
        created: media added by this call.
        kept: media of this job that were already there (a replay) and were kept.
        removed: media Packshot had added for an earlier photo of this SKU and theme.
    """

    publisher: str
    product_id: str | None = None
    variant_id: str | None = None
    media_ids: tuple[str, ...] = ()
    created: tuple[str, ...] = ()
    kept: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()

    def details(self) -> dict[str, object]:
        """The result as a JSON-ready dict with camelCase keys (step details, manifest)."""
        return {
            "publisher": self.publisher,
            "productId": self.product_id,
            "variantId": self.variant_id,
            "mediaIds": list(self.media_ids),
            "created": list(self.created),
            "kept": list(self.kept),
            "removed": list(self.removed),
        }


@dataclass(frozen=True)
class PlannedMutation:
    """One mutation ``publish`` would send; ids not known yet appear as ``<...>``."""

    name: str
    query: str
    variables: dict[str, Any]


@dataclass(frozen=True)
class PublishPlan:
    """What ``publish`` would do now, from a read-only look at the store."""

    publisher: str
    product_id: str | None = None
    variant_id: str | None = None
    keep: tuple[str, ...] = ()
    create: tuple[str, ...] = ()
    remove: tuple[str, ...] = ()
    mutations: tuple[PlannedMutation, ...] = field(default_factory=tuple)

    def as_dict(self) -> dict[str, object]:
        """JSON-ready form for printing."""
        return {
            "publisher": self.publisher,
            "productId": self.product_id,
            "variantId": self.variant_id,
            "keep": list(self.keep),
            "create": list(self.create),
            "remove": list(self.remove),
            "mutations": [
                {"name": m.name, "query": m.query, "variables": m.variables} for m in self.mutations
            ],
        }


@runtime_checkable
class Publisher(Protocol):
    """Puts a job's images on the storefront."""

    name: str

    def publish(self, request: PublishRequest) -> PublishResult:
        """Make the storefront show the request's images; safe to repeat.

        Raises:
            PublishError: transient unless ``permanent`` (product not found, media FAILED).
            ConfigurationError: credentials, scopes, or an ambiguous SKU.
        """
        ...

    def plan(self, request: PublishRequest) -> PublishPlan:
        """Read the storefront and list the mutations ``publish`` would send."""
        ...

"""Protocols for the pipeline's variable parts: background removal and background generation."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from PIL import Image

    from core.themes import BackgroundVariant

__all__ = [
    "BackgroundGenerator",
    "BackgroundRemover",
    "GeneratedBackground",
    "Segmentation",
]


@dataclass(frozen=True)
class Segmentation:
    """What a background remover returns.

    Attributes:
        cutout: RGBA image of the product only, trimmed to its bounding box plus a margin.
        mask: 8-bit ``L`` image at the *source* size, 255 = product, 0 = background.
        bbox: the product's bounding box in source pixels ``(left, top, right, bottom)``.
        provider: name of the provider that produced it (``local``, ``freepik``).
        cost_usd: what the call cost (0 for local models).
        details: small JSON-able facts for the step row / manifest (model, timings, …).
    """

    cutout: Image.Image
    mask: Image.Image
    bbox: tuple[int, int, int, int]
    provider: str
    cost_usd: float = 0.0
    details: dict[str, object] = field(default_factory=dict)


@runtime_checkable
class BackgroundRemover(Protocol):
    """Cuts the product out of a decoded RGB(A) photo."""

    name: str

    def remove(self, image: Image.Image, *, source_url: str | None = None) -> Segmentation:
        """Segment ``image``; ``source_url`` is a fetchable URL of the same bytes, if any."""
        ...


@dataclass(frozen=True)
class GeneratedBackground:
    """One rendered background variant."""

    image: Image.Image
    provider: str
    cost_usd: float = 0.0
    details: dict[str, object] = field(default_factory=dict)


@runtime_checkable
class BackgroundGenerator(Protocol):
    """Renders one of a theme's background variants at a square size."""

    name: str

    def generate(self, variant: BackgroundVariant, size: int, *, seed: int) -> GeneratedBackground:
        """Render ``variant`` as an RGB image of ``size`` × ``size`` pixels."""
        ...

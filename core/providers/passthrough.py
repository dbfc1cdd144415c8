"""Test double and offline fallback remover: keeps the image's own alpha (opaque if it has none)."""

from __future__ import annotations

from PIL import Image

from core.providers.base import Segmentation
from imaging.matting import binary_mask, cutout

__all__ = ["PassthroughRemover"]


class PassthroughRemover:
    """Treats the image's alpha channel as the product mask; an opaque image is all product."""

    name = "passthrough"

    def remove(self, image: Image.Image, *, source_url: str | None = None) -> Segmentation:
        """Cut ``image`` out along its own alpha."""
        opaque = image.mode != "RGBA"
        alpha = Image.new("L", image.size, 255) if opaque else image.getchannel("A")
        product, bbox = cutout(image.convert("RGB"), alpha)
        return Segmentation(cutout=product, mask=binary_mask(alpha), bbox=bbox, provider=self.name)

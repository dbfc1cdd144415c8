"""Local background generators: the theme's gradients and solid colours, rendered offline."""

from __future__ import annotations

from typing import TYPE_CHECKING

from core.providers.base import GeneratedBackground
from imaging.background import render_gradient, render_solid

if TYPE_CHECKING:
    from core.themes import BackgroundVariant

__all__ = ["GradientGenerator", "SolidGenerator"]


class GradientGenerator:
    """Renders each variant's gradient (linear or radial studio sweep) or solid colour."""

    name = "gradient"

    def generate(self, variant: BackgroundVariant, size: int, *, seed: int) -> GeneratedBackground:
        """Render ``variant`` at ``size`` px; the same seed gives the same pixels."""
        if variant.kind == "solid" or len(variant.stops) < 2:
            image = render_solid(size, variant.solid_rgb())
            return GeneratedBackground(image=image, provider=self.name, details={"kind": "solid"})
        image = render_gradient(
            size,
            variant.gradient_stops(),
            kind=variant.gradient,
            angle=variant.angle,
            seed=seed,
        )
        return GeneratedBackground(
            image=image, provider=self.name, details={"kind": variant.gradient}
        )


class SolidGenerator:
    """Test double and offline fallback: every variant as one flat colour."""

    name = "solid"

    def __init__(self, color: tuple[int, int, int] = (240, 240, 245)) -> None:
        self.color = color

    def generate(self, variant: BackgroundVariant, size: int, *, seed: int) -> GeneratedBackground:
        """A flat ``size`` × ``size`` image of ``color``."""
        return GeneratedBackground(image=render_solid(size, self.color), provider=self.name)

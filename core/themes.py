"""Themes as data: a theme's backgrounds, its shadow, and how much of the canvas the product fills.

Built in: ``default`` (the original system's two light gradients) and ``white`` (pure #FFFFFF for
marketplaces, never AI-generated). More themes, or changes to these, come from the JSON file named
by ``PACKSHOT_THEMES_FILE``: ``{"themes": [{"name": ..., "variants": [...]}, ...]}``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from core.errors import ConfigurationError, InputError
from core.schemas import NAME_RULE, is_valid_name
from imaging.background import GradientStop
from imaging.composite import Shadow

__all__ = [
    "BUILTIN_THEMES",
    "BackgroundVariant",
    "ShadowSpec",
    "Theme",
    "load_themes",
    "resolve_theme",
]

_HEX = re.compile(r"^#[0-9A-Fa-f]{6}$")
RGB = tuple[int, int, int]


def hex_to_rgb(value: str) -> RGB:
    """``"#F0F0FA"`` → ``(240, 240, 250)``."""
    if not _HEX.match(value):
        raise ValueError(f"colour {value!r} is not #RRGGBB")
    return (int(value[1:3], 16), int(value[3:5], 16), int(value[5:7], 16))


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class BackgroundVariant(_Model):
    """One background of a theme: a gradient, a solid colour, or a prompt for an AI generator.

    A variant with a ``prompt`` is rendered by an AI generator when one is configured; its
    ``stops``/``color`` are the local fallback, so every variant can always be rendered offline.
    """

    kind: Literal["gradient", "solid"] = "gradient"
    gradient: Literal["linear", "radial"] = "linear"
    stops: tuple[tuple[float, str], ...] = ()
    angle: float = 90.0
    color: str | None = None
    label: str = ""
    prompt: str | None = None
    resolution: Literal["1k", "2k", "4k"] = "2k"
    aspect_ratio: str = "square_1_1"
    model: str = "realism"
    seed: int | None = None

    @field_validator("stops")
    @classmethod
    def _check_stops(cls, stops: tuple[tuple[float, str], ...]) -> tuple[tuple[float, str], ...]:
        for position, colour in stops:
            if not 0.0 <= position <= 1.0:
                raise ValueError(f"stop position {position} is outside 0..1")
            hex_to_rgb(colour)
        return stops

    def gradient_stops(self) -> list[GradientStop]:
        """The stops as imaging ``GradientStop`` values."""
        return [GradientStop(position=p, color=hex_to_rgb(c)) for p, c in self.stops]

    def solid_rgb(self) -> RGB:
        """The solid colour as RGB (white when unset)."""
        return hex_to_rgb(self.color or "#FFFFFF")


class ShadowSpec(_Model):
    """Soft drop shadow, in pixels of a 1024 px canvas (scaled with the real canvas)."""

    blur: float = Field(20.0, ge=0, le=200)
    opacity: float = Field(0.3, ge=0, le=1)
    offset: tuple[float, float] = (5.0, 5.0)

    def to_imaging(self) -> Shadow | None:
        """The imaging ``Shadow``; ``None`` when the shadow is switched off (opacity 0)."""
        if self.opacity == 0:
            return None
        return Shadow(blur=self.blur, opacity=self.opacity, offset=self.offset)


class Theme(_Model):
    """A named look: its background variants, shadow and product fill."""

    name: str
    variants: tuple[BackgroundVariant, ...] = Field(min_length=1, max_length=8)
    shadow: ShadowSpec = ShadowSpec()
    fill: float = Field(0.85, gt=0.1, le=1.0)
    max_upscale: float = Field(2.0, ge=1.0, le=4.0)
    ai_allowed: bool = True
    # Channels whose rules the quality step checks every composite against. Known:
    # "marketplace-main" (a marketplace's main image: JPEG, sRGB, >= 1600 px, the product
    # filling >= 85 % of the longer side, pure #FFFFFF where there is no product or shadow).
    channels: tuple[Literal["marketplace-main"], ...] = ()

    @field_validator("name")
    @classmethod
    def _check_name(cls, name: str) -> str:
        if not is_valid_name(name):
            raise ValueError(f"theme name {NAME_RULE}")
        return name


BUILTIN_THEMES: dict[str, Theme] = {
    "default": Theme(
        name="default",
        variants=(
            BackgroundVariant(
                label="light lavender gradient",
                gradient="linear",
                stops=((0.0, "#F7F7FC"), (1.0, "#DCDCF0")),
                prompt="soft studio backdrop, pale lavender-grey gradient, seamless, no objects",
            ),
            BackgroundVariant(
                label="studio sweep",
                gradient="radial",
                stops=((0.0, "#F4F4FA"), (1.0, "#C8C8E6")),
                prompt="photo studio sweep, light blue-grey, soft vignette, seamless, no objects",
            ),
        ),
    ),
    "white": Theme(
        name="white",
        variants=(BackgroundVariant(kind="solid", color="#FFFFFF", label="pure white"),),
        shadow=ShadowSpec(opacity=0.18),
        ai_allowed=False,
        channels=("marketplace-main",),
    ),
}


def load_themes(themes_file: Path | None = None) -> dict[str, Theme]:
    """Built-in themes, overlaid with those of ``themes_file`` (same name replaces).

    Raises:
        ConfigurationError: the file is missing, not JSON, or a theme in it is invalid.
    """
    themes = dict(BUILTIN_THEMES)
    if themes_file is None:
        return themes
    try:
        document = json.loads(themes_file.read_text(encoding="utf-8"))
        for raw in document.get("themes", []):
            theme = Theme.model_validate(raw)
            themes[theme.name] = theme
    except (OSError, json.JSONDecodeError, ValidationError, AttributeError) as exc:
        raise ConfigurationError(f"themes file {themes_file}: {exc}") from exc
    return themes


def resolve_theme(name: str, themes_file: Path | None = None) -> Theme:
    """The theme called ``name``.

    Raises:
        InputError: no such theme (the message lists the known ones).
    """
    themes = load_themes(themes_file)
    try:
        return themes[name]
    except KeyError:
        known = ", ".join(sorted(themes))
        raise InputError(f"unknown theme {name!r}; known themes: {known}") from None

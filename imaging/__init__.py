"""Pure image functions: Pillow images or bytes in, new images or bytes out.

Nothing here touches disk, network, settings, logging or Prefect; only the standard library,
Pillow and numpy are imported.

The names below load their module on first use, so that a process which only decodes and
encodes (a derivatives run) does not import numpy or the compositing code at start.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from imaging.background import GradientStop, render_gradient, render_solid
    from imaging.checks import QualityError, alpha_coverage, check_cutout, is_blank
    from imaging.codec import (
        CONTENT_TYPES,
        EXTENSIONS,
        ImageInfo,
        ImageTooLarge,
        ImageTooSmall,
        InvalidImage,
        UnreadableImage,
        decode,
        encode,
        probe,
        sniff,
    )
    from imaging.composite import Placement, Shadow, composite, place
    from imaging.derivatives import (
        DEFAULT_SPECS,
        FORMATS,
        SIZES,
        DerivativeSpec,
        Rendered,
        render,
        render_all,
    )
    from imaging.geometry import alpha_bbox, contain_size, crop_to_alpha, fit

_MODULES = {
    "background": ("GradientStop", "render_gradient", "render_solid"),
    "checks": ("QualityError", "alpha_coverage", "check_cutout", "is_blank"),
    "codec": (
        "CONTENT_TYPES",
        "EXTENSIONS",
        "ImageInfo",
        "ImageTooLarge",
        "ImageTooSmall",
        "InvalidImage",
        "UnreadableImage",
        "decode",
        "encode",
        "probe",
        "sniff",
    ),
    "composite": ("Placement", "Shadow", "composite", "place"),
    "derivatives": (
        "DEFAULT_SPECS",
        "FORMATS",
        "SIZES",
        "DerivativeSpec",
        "Rendered",
        "render",
        "render_all",
    ),
    "geometry": ("alpha_bbox", "contain_size", "crop_to_alpha", "fit"),
}
_HOME = {name: module for module, names in _MODULES.items() for name in names}


def __getattr__(name: str) -> Any:
    """``imaging.NAME``: imports NAME's module the first time it is asked for (PEP 562)."""
    module = _HOME.get(name)
    if module is None:
        raise AttributeError(f"module 'imaging' has no attribute {name!r}")
    return getattr(import_module(f"imaging.{module}"), name)


__all__ = [
    "CONTENT_TYPES",
    "DEFAULT_SPECS",
    "EXTENSIONS",
    "FORMATS",
    "SIZES",
    "DerivativeSpec",
    "GradientStop",
    "ImageInfo",
    "ImageTooLarge",
    "ImageTooSmall",
    "InvalidImage",
    "Placement",
    "QualityError",
    "Rendered",
    "Shadow",
    "UnreadableImage",
    "alpha_bbox",
    "alpha_coverage",
    "check_cutout",
    "composite",
    "contain_size",
    "crop_to_alpha",
    "decode",
    "encode",
    "fit",
    "is_blank",
    "place",
    "probe",
    "render",
    "render_all",
    "render_gradient",
    "render_solid",
    "sniff",
]

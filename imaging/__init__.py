"""Pure image functions: Pillow images or bytes in, new images or bytes out.

Nothing here touches disk, network, settings, logging or Prefect; only the standard library,
Pillow and numpy are imported.
"""

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

"""Colour internals for ``imaging.codec``: mode normalisation, 16-bit scaling, ICC → sRGB.

Decoders hand over many modes (1, P, PA, LA, I;16, F, CMYK, ...); these functions reduce them
to 8-bit sRGB ``RGB`` or ``RGBA``, converting through an embedded ICC profile when it is usable.
"""

from __future__ import annotations

import io

from PIL import Image, ImageCms

_PROFILE_SPACES = {"L": "GRAY", "RGB": "RGB", "RGBA": "RGB", "CMYK": "CMYK"}
_TO_WORKING_MODE = {"1": "L", "P": "RGB", "PA": "RGBA", "LA": "RGBA", "RGBa": "RGBA"}


def to_working_mode(image: Image.Image) -> Image.Image:
    """Reduce every decoder mode to L, RGB, RGBA or CMYK (the modes ICC transforms take).

    Raises:
        ValueError: Pillow cannot convert the image's mode.
    """
    if image.mode in ("I", "F") or image.mode.startswith("I;16"):
        return _to_8bit(image)
    if "transparency" in image.info and image.mode in ("P", "L", "RGB"):
        return image.convert("RGBA")
    if image.mode in _PROFILE_SPACES:
        return image
    return image.convert(_TO_WORKING_MODE.get(image.mode, "RGB"))


def to_srgb(image: Image.Image, icc: bytes | None) -> Image.Image:
    """Convert an image in a working mode (see :func:`to_working_mode`) to sRGB RGB or RGBA.

    Args:
        image: Mode ``L``, ``RGB``, ``RGBA`` or ``CMYK``.
        icc: The embedded ICC profile, if any; unusable or already-sRGB profiles are ignored.

    Returns:
        ``RGBA`` when the alpha channel has real transparency, otherwise ``RGB``.
    """
    profile = _usable_profile(icc, _PROFILE_SPACES[image.mode])
    if profile is not None:
        image = _apply_profile(image, profile)
    if image.mode in ("L", "CMYK"):
        # No usable profile: assume the grey is sRGB-encoded and let Pillow do the naive CMYK
        # conversion (it already undoes Adobe's inverted CMYK while decoding).
        image = image.convert("RGB")
    if image.mode == "RGBA" and image.getchannel("A").getextrema()[0] == 255:
        # An alpha channel with nothing transparent in it is not transparency.
        image = image.convert("RGB")
    return image


def _to_8bit(image: Image.Image) -> Image.Image:
    # Pillow's own convert("L") clips 16-bit values at 255 instead of scaling them. Nominal
    # ranges: integer modes hold 16-bit samples (how Pillow reads 16-bit PNG/TIFF), F holds 0-1.
    import numpy as np  # here: most photos are 8-bit, and numpy costs a process start ~50 ms

    values = np.asarray(image)
    if image.mode == "F":
        scaled = np.clip(values, 0.0, 1.0) * 255.0 + 0.5
    else:
        scaled = (np.clip(values, 0, 65535).astype(np.uint32) * 255 + 32767) // 65535
    return Image.fromarray(scaled.astype(np.uint8))


def _usable_profile(icc: bytes | None, space: str) -> ImageCms.ImageCmsProfile | None:
    if not icc:
        return None
    try:
        profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
    except (OSError, ValueError, TypeError, ImageCms.PyCMSError):
        # Browsers show pixels with a broken profile as sRGB; so do we.
        return None
    if profile.profile.xcolor_space.strip() != space:
        return None
    if space == "RGB" and "sRGB" in (profile.profile.profile_description or ""):
        # Already sRGB: skip an identity transform that costs ~0.6 s of CPU on a 48 MP photo.
        return None
    return profile


def _apply_profile(image: Image.Image, profile: ImageCms.ImageCmsProfile) -> Image.Image:
    out_mode = "RGBA" if image.mode == "RGBA" else "RGB"
    try:
        # Relative colorimetric with black-point compensation: what photo editors use to
        # convert to sRGB for the web. In place when the mode stays, to spare a full-size copy.
        converted = ImageCms.profileToProfile(
            image,
            profile,
            ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")),
            renderingIntent=ImageCms.Intent.RELATIVE_COLORIMETRIC,
            outputMode=out_mode,
            inPlace=image.mode == out_mode,
            flags=ImageCms.Flags.BLACKPOINTCOMPENSATION,
        )
    except (ImageCms.PyCMSError, ValueError):
        # A profile LittleCMS cannot use (missing tags, ...): fall back to the naive conversion.
        return image
    return image if converted is None else converted

"""Object-store keys: content-addressed, as the original system had them (docs/architecture.md)."""

from __future__ import annotations

__all__ = [
    "background_key",
    "composite_key",
    "cutout_key",
    "derivative_key",
    "manifest_key",
    "mask_key",
    "original_key",
    "original_prefix",
]


def original_prefix(sku: str, sha256: str) -> str:
    """Prefix of the original, whatever its extension."""
    return f"originals/{sku}/{sha256}."


def original_key(sku: str, sha256: str, ext: str) -> str:
    """``originals/{sku}/{sha}.{ext}``."""
    return f"{original_prefix(sku, sha256)}{ext}"


def cutout_key(sku: str, sha256: str) -> str:
    """``cutouts/{sku}/{sha}.png`` (RGBA, product only)."""
    return f"cutouts/{sku}/{sha256}.png"


def mask_key(sku: str, sha256: str) -> str:
    """``masks/{sku}/{sha}.png`` (8-bit L, 255 = product)."""
    return f"masks/{sku}/{sha256}.png"


def background_key(theme: str, sku: str, sha256: str, n: int) -> str:
    """``backgrounds/{theme}/{sku}/{sha}_{n}.jpg``; ``n`` counts from 1."""
    return f"backgrounds/{theme}/{sku}/{sha256}_{n}.jpg"


def composite_key(theme: str, sku: str, sha256: str, n: int) -> str:
    """``composites/{theme}/{sku}/{sha}_1x1_{n}_master.jpg``."""
    return f"composites/{theme}/{sku}/{sha256}_1x1_{n}_master.jpg"


def derivative_key(theme: str, sku: str, sha256: str, n: int, size: str, ext: str) -> str:
    """``derivatives/{theme}/{sku}/{sha}/{n}_{size}.{ext}``."""
    return f"derivatives/{theme}/{sku}/{sha256}/{n}_{size}.{ext}"


def manifest_key(sku: str, sha256: str, theme: str) -> str:
    """``manifests/{sku}/{sha}-{theme}.json``."""
    return f"manifests/{sku}/{sha256}-{theme}.json"

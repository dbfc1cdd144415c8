"""``packshot segment``: run the configured background remover on local files, for checking."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from core.errors import InputError
from core.providers.base import BackgroundRemover
from imaging.codec import InvalidImage, decode, encode

__all__ = ["SegmentedFile", "segment_file"]


@dataclass(frozen=True)
class SegmentedFile:
    """What ``segment_file`` wrote."""

    source: Path
    mask: Path
    cutout: Path
    coverage: float


def segment_file(
    path: Path, out_dir: Path, remover: BackgroundRemover, *, max_pixels: int, min_side: int
) -> SegmentedFile:
    """Write ``NAME.mask.png`` (255 = product) and ``NAME.cutout.png`` for ``path``.

    Raises:
        InputError: the file is missing or not a usable image.
    """
    try:
        image = decode(path.read_bytes(), max_pixels=max_pixels, min_side=min_side)
    except OSError as exc:
        raise InputError(f"{path}: {exc.strerror or exc}") from exc
    except InvalidImage as exc:
        raise InputError(f"{path}: {exc}") from exc
    result = remover.remove(image)
    out_dir.mkdir(parents=True, exist_ok=True)
    mask_path = out_dir / f"{path.stem}.mask.png"
    cutout_path = out_dir / f"{path.stem}.cutout.png"
    mask_path.write_bytes(encode(result.mask, "png"))
    cutout_path.write_bytes(encode(result.cutout, "png"))
    histogram = result.mask.histogram()
    coverage = histogram[255] / max(1, result.mask.width * result.mask.height)
    return SegmentedFile(source=path, mask=mask_path, cutout=cutout_path, coverage=coverage)

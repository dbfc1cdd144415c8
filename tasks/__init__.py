"""Prefect tasks, one module per pipeline step; each returns keys, never pixels."""

from tasks.composite import composite
from tasks.derivatives import derivatives
from tasks.download import download, prefetch
from tasks.generate_background import generate_backgrounds
from tasks.manifest import write_manifest
from tasks.publish import publish
from tasks.quality import check_quality
from tasks.remove_background import remove_background

__all__ = [
    "check_quality",
    "composite",
    "derivatives",
    "download",
    "generate_backgrounds",
    "prefetch",
    "publish",
    "remove_background",
    "write_manifest",
]

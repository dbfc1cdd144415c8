"""Configure logging once per process: key=value events from Packshot's own loggers."""

from __future__ import annotations

import logging
import sys

__all__ = ["configure_logging"]

_FORMAT = "%(asctime)s %(levelname)-7s %(name)s %(message)s"


def configure_logging(level: str = "INFO") -> None:
    """Send ``packshot.*`` logs to stderr at ``level`` (idempotent)."""
    logger = logging.getLogger("packshot")
    logger.setLevel(level.upper())
    if any(getattr(h, "_packshot", False) for h in logger.handlers):
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(_FORMAT, datefmt="%H:%M:%S"))
    handler._packshot = True  # type: ignore[attr-defined]
    logger.addHandler(handler)
    logger.propagate = False

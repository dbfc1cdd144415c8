"""Key=value logs of the webhook and the dispatcher: structlog over the stdlib ``packshot`` logger.

Never log the webhook secret or a full image URL: URLs go through ``core.urls.redact_url``.
"""

from __future__ import annotations

import logging
import sys

import structlog

__all__ = ["configure_logging", "get_logger"]

_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


def configure_logging(level: str = "INFO") -> None:
    """Send ``packshot.*`` records to stderr unless the host process already routes them."""
    logger = logging.getLogger("packshot")
    logger.setLevel(level.upper())
    if logger.handlers or logging.getLogger().handlers:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(_FORMAT))
    logger.addHandler(handler)


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    """A structlog logger over ``logging.getLogger(name)``; bind ids once, log key/value events."""
    return structlog.wrap_logger(
        logging.getLogger(name),
        wrapper_class=structlog.stdlib.BoundLogger,
        processors=[
            structlog.stdlib.filter_by_level,
            structlog.processors.format_exc_info,
            structlog.processors.LogfmtRenderer(
                key_order=["event"], drop_missing=True, bool_as_flag=False
            ),
        ],
    )

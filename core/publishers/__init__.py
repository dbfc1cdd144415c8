"""Publishers: put a job's images on the storefront (``none`` or ``shopify``)."""

from core.publishers.base import (
    PlannedMutation,
    Publisher,
    PublishImage,
    PublishPlan,
    PublishRequest,
    PublishResult,
)
from core.publishers.registry import PUBLISHERS, check_publisher, new_publisher

__all__ = [
    "PUBLISHERS",
    "PlannedMutation",
    "PublishImage",
    "PublishPlan",
    "PublishRequest",
    "PublishResult",
    "Publisher",
    "check_publisher",
    "new_publisher",
]

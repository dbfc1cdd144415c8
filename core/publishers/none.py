"""Publisher ``none``: publishing switched off (the embedded default); changes nothing."""

from __future__ import annotations

from core.publishers.base import PublishPlan, PublishRequest, PublishResult

__all__ = ["NonePublisher"]


class NonePublisher:
    """Publishes nothing; the publish step records "publishing disabled"."""

    name = "none"

    def publish(self, request: PublishRequest) -> PublishResult:
        """Nothing to do."""
        return PublishResult(publisher=self.name)

    def plan(self, request: PublishRequest) -> PublishPlan:
        """No mutations."""
        return PublishPlan(publisher=self.name)

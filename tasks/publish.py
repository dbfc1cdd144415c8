"""Step 6: publish the composites to the storefront (an explicit, recorded no-op when disabled)."""

from __future__ import annotations

from prefect import task

from core.errors import ConfigurationError
from core.tables import Step
from tasks._hooks import tracked
from tasks._policy import STEP_OPTIONS
from tasks._runtime import settings

__all__ = ["publish"]


@task(name="publish", timeout_seconds=900, **STEP_OPTIONS)
def publish(job_id: str, manifest_key: str) -> str:
    """Publish the job's images; returns what happened ("disabled", …).

    Args:
        job_id: the job to publish.
        manifest_key: the manifest listing its files.
    """
    with tracked(job_id, Step.PUBLISH) as record:
        publisher = settings().publisher
        if publisher == "none":
            record.provider = "none"
            record.details = {"reason": "publishing disabled (PACKSHOT_PUBLISHER=none)"}
            return "disabled"
        raise ConfigurationError(f"unknown publisher {publisher!r}; known: none")

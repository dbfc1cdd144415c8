"""What a step is told about its job: one frozen context, built once when the flow starts."""

from __future__ import annotations

import uuid

from pydantic import BaseModel, ConfigDict, SecretStr

from core.themes import Theme
from core.urls import redact_url

__all__ = ["JobContext"]


class JobContext(BaseModel):
    """The job a step works for, as the flow resolved it at its start.

    Every step of a run gets the same object, so a change to the themes file mid-run cannot
    mix two versions of a theme in one image set, and no step parses the job id or looks the
    theme up again. ``source`` is the whole source URL (credentials included, for fetching
    only); show ``shown_source`` instead.
    """

    model_config = ConfigDict(frozen=True)

    job_id: uuid.UUID
    sku: str
    sha256: str
    theme: Theme
    source: SecretStr
    # Redo every step, the cutout too (the dashboard's "Redo every step").
    force: bool = False
    # Redo backgrounds, composites and derivatives; reuse the stored original and cutout.
    rerender: bool = False
    # This run's background remover instead of PACKSHOT_SEGMENTER (the review page's "Redo with
    # Freepik"); None: the configured chain.
    segmenter: str | None = None

    @property
    def theme_name(self) -> str:
        """The theme's name, as used in storage keys."""
        return self.theme.name

    @property
    def source_url(self) -> str:
        """The whole source URL or local path, to fetch from."""
        return self.source.get_secret_value()

    @property
    def shown_source(self) -> str:
        """The source as it may be shown: no credentials, no query values."""
        return redact_url(self.source_url)

"""Non-table models: the validated job request, the camelCase base, the CLI and API views."""

from __future__ import annotations

import json
import re
import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel

from imaging.quality import Quality

__all__ = [
    "NAME_PATTERN",
    "NAME_RULE",
    "SHA256_PATTERN",
    "AssetView",
    "CamelModel",
    "ImageJobSpec",
    "JobView",
    "QualityCheck",
    "QualityReport",
    "StepView",
    "is_valid_name",
    "parse_quality",
]

NAME_PATTERN = r"^[A-Za-z0-9._-]{1,64}$"
# SKUs and theme names become parts of storage keys: this one rule is used everywhere. "." and
# ".." match the characters but are path steps, not names (`originals/../…`).
_NAME_RE = re.compile(r"[A-Za-z0-9._-]{1,64}")
_PATH_STEPS = frozenset({".", ".."})
NAME_RULE = "must be 1 to 64 characters from A-Z, a-z, 0-9, '.', '_' and '-', other than . or .."
SHA256_PATTERN = r"^[0-9a-fA-F]{64}$"

Name = Annotated[str, Field(pattern=NAME_PATTERN, description="[A-Za-z0-9._-]{1,64}, not . or ..")]


def is_valid_name(value: str) -> bool:
    """True when ``value`` may be a SKU or a theme name (the whole string, no trailing newline).

    >>> [is_valid_name(v) for v in ("SKU-1.a", "...", "..", ".", "a/b", "x" * 65)]
    [True, True, False, False, False, False]
    """
    return _NAME_RE.fullmatch(value) is not None and value not in _PATH_STEPS


class ImageJobSpec(BaseModel):
    """One image to process: what the webhook, the CLI and a deployment run all reduce to.

    ``sha256`` may be unknown (CLI on a URL); the pipeline then computes it from the bytes.
    """

    model_config = ConfigDict(frozen=True)

    sku: Name
    image_url: str = Field(min_length=1, max_length=4096)
    sha256: str | None = Field(None, pattern=SHA256_PATTERN)
    theme: Name = "default"

    @field_validator("sku", "theme", mode="before")
    @classmethod
    def _as_text(cls, value: object) -> object:
        # `prefect deployment run --param sku=12345` hands us an int: a SKU is always text.
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value

    @field_validator("sku", "theme")
    @classmethod
    def _not_a_path_step(cls, value: str) -> str:
        if not is_valid_name(value):  # the pattern has passed: only "." and ".." are left
            raise ValueError(NAME_RULE)
        return value

    @field_validator("sha256")
    @classmethod
    def _lower(cls, value: str | None) -> str | None:
        return value.lower() if value else None

    @field_validator("image_url")
    @classmethod
    def _strip(cls, value: str) -> str:
        value = value.strip()
        if re.search(r"\s", value):
            raise ValueError("must not contain whitespace")
        return value


class CamelModel(BaseModel):
    """Base of every model published as JSON (API, ``--json``, manifest): the one camelCase rule.

    Fields are snake_case in Python and camelCase in JSON (``model_dump(by_alias=True)``);
    either name is accepted on input, and ``from_attributes`` reads a table row directly.
    """

    model_config = ConfigDict(from_attributes=True, alias_generator=to_camel, populate_by_name=True)


class StepView(CamelModel):
    """One step row as shown by the CLI (--json) and the API."""

    step: str
    variant: int = 0
    state: str
    attempts: int
    ms: float | None = Field(None, validation_alias="duration_ms")
    cost_usd: float = 0.0
    provider: str | None = None
    error: str | None = None


class AssetView(CamelModel):
    """One stored asset of a job."""

    kind: str
    key: str
    variant: int | None = None
    size: str | None = None
    format: str | None = None
    width: int | None = None
    height: int | None = None
    bytes: int = 0
    content_type: str


class QualityCheck(CamelModel):
    """One named check: the measured value, its threshold, whether it passed, and why."""

    name: str
    value: float
    threshold: float
    passed: bool
    detail: str


class QualityReport(CamelModel):
    """A job's verdict: ``review`` when any check failed; ``score`` is the share that passed."""

    verdict: Literal["pass", "review"]
    score: float
    checks: list[QualityCheck]

    @classmethod
    def from_checks(cls, quality: Quality) -> QualityReport:
        """The report of ``imaging.quality.summarise``'s result."""
        return cls(
            verdict="pass" if quality.verdict == "pass" else "review",
            score=quality.score,
            checks=[QualityCheck.model_validate(c, from_attributes=True) for c in quality.checks],
        )

    def failed(self) -> list[QualityCheck]:
        """The checks that did not pass, in order."""
        return [c for c in self.checks if not c.passed]

    def summary(self) -> str:
        """One line for people: the verdict and, for ``review``, what failed, in words."""
        if self.verdict == "pass":
            return f"pass ({len(self.checks)} checks)"
        return "review: " + "; ".join(c.detail for c in self.failed())

    def to_column(self) -> str:
        """The JSON stored in ``job.quality`` (camelCase, as published)."""
        return self.model_dump_json(by_alias=True)


def parse_quality(text: str | None) -> QualityReport | None:
    """The report stored in ``job.quality``; None when there is none or it is unreadable."""
    if not text:
        return None
    try:
        return QualityReport.model_validate(json.loads(text))
    except (ValueError, TypeError):
        return None


class JobView(CamelModel):
    """A job with its steps and assets."""

    # Read from a ``Job`` row: the id is its ``id``, ``ms`` its ``duration_ms``.
    job_id: uuid.UUID = Field(validation_alias=AliasChoices("id", "jobId"))
    sku: str
    sha256: str
    theme: str
    status: str
    error: str | None = None
    error_step: str | None = None
    error_type: str | None = None
    manifest_key: str | None = None
    flow_run_id: str | None = None
    cost_usd: float = 0.0
    ms: float | None = Field(None, validation_alias="duration_ms")
    created_at: datetime
    quality: QualityReport | None = None
    steps: list[StepView] = []
    assets: list[AssetView] = []

    @field_validator("quality", mode="before")
    @classmethod
    def _stored_quality(cls, value: object) -> object:
        # A row keeps the report as JSON text; an unreadable one is shown as none.
        return parse_quality(value) if isinstance(value, str) else value

"""Request and response models of the webhook (docs/architecture.md), fields named as 3JMS sends."""

from __future__ import annotations

import re
import uuid
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_core import PydanticCustomError

from core.schemas import NAME_RULE, CamelModel, ImageJobSpec, is_valid_name
from core.urls import url_problem

__all__ = [
    "Accepted",
    "Duplicate",
    "ErrorBody",
    "FieldError",
    "ImageEvent",
    "field_errors",
    "parse_event",
]

_SHA256 = re.compile(r"[0-9a-fA-F]{64}")


def _text(value: object) -> str:
    # A numeric SKU is still a SKU: take it as text, as the CLI and the flow do.
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str):
        raise PydanticCustomError("type", "must be a string")
    return value


class ImageEvent(BaseModel):
    """A 3JMS "new image" delivery; unknown extra fields are ignored."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    sku: str = Field(description="[A-Za-z0-9._-]{1,64}, not . or ..; part of storage keys.")
    image_url: str = Field(
        alias="imageUrl",
        description="Absolute http(s) URL of the photo (valid host, port 1-65535).",
    )
    sha256: str = Field(description="64 hex characters: SHA-256 of the bytes at imageUrl.")
    theme: str = Field("default", description="A known theme; [A-Za-z0-9._-]{1,64}, not . or ..")

    @field_validator("sku", "theme", mode="before")
    @classmethod
    def _name(cls, value: object) -> str:
        text = _text(value)
        if not is_valid_name(text):
            raise PydanticCustomError("name", NAME_RULE)
        return text

    @field_validator("sha256", mode="before")
    @classmethod
    def _sha256(cls, value: object) -> str:
        text = _text(value)
        if not _SHA256.fullmatch(text):
            raise PydanticCustomError("sha256", "must be 64 hexadecimal characters")
        return text.lower()

    @field_validator("image_url", mode="before")
    @classmethod
    def _url(cls, value: object) -> str:
        text = _text(value).strip()
        problem = url_problem(text)
        if problem is not None:
            # As context, not as the template: the text may hold braces from the URL.
            raise PydanticCustomError("url", "{problem}", {"problem": problem})
        return text

    def to_spec(self) -> ImageJobSpec:
        """The pipeline's job request for this delivery."""
        return ImageJobSpec(
            sku=self.sku, image_url=self.image_url, sha256=self.sha256, theme=self.theme
        )


class FieldError(BaseModel):
    """One invalid field of a delivery."""

    field: str
    message: str


class ErrorBody(BaseModel):
    """Every 4xx/5xx answer: a stable code, and for 422 the fields at fault."""

    error: str
    message: str | None = None
    details: list[FieldError] | None = None


class Accepted(CamelModel):
    """202: a new job; its flow run is created by the dispatcher shortly after."""

    job_id: uuid.UUID
    status: str = "created"


class Duplicate(CamelModel):
    """200: the same (sku, sha256, theme) was delivered before; nothing new starts."""

    job_id: uuid.UUID
    status: str
    duplicate: bool = True


_ALIASES = {"image_url": "imageUrl"}
_MESSAGES = {"missing": "is required"}


def field_errors(exc: ValidationError) -> list[FieldError]:
    """Pydantic errors as ``{"field", "message"}`` with the field named as 3JMS sends it."""
    out: list[FieldError] = []
    for error in exc.errors(include_url=False):
        loc = error.get("loc") or ("body",)
        name = str(loc[0])
        out.append(
            FieldError(
                field=_ALIASES.get(name, name),
                message=_MESSAGES.get(error["type"], error["msg"]),
            )
        )
    return out


def parse_event(document: Any) -> ImageEvent | list[FieldError]:
    """The delivery as an ``ImageEvent``, or the list of what is wrong with it."""
    if not isinstance(document, dict):
        return [FieldError(field="body", message="must be a JSON object")]
    try:
        return ImageEvent.model_validate(document)
    except ValidationError as exc:
        return field_errors(exc)

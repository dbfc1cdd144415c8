"""Freepik's answers as data: result records, ``Retry-After`` and ``invalid_params`` parsing.

Both documented Mystic shapes are read (``{"data": {...}}`` or the bare object; ``status`` or
``task_status``). A body that is not JSON is :class:`ProviderUnavailable` (a truncated body or
a gateway's HTML page: a later call usually gets clean JSON); JSON without the documented
fields is :class:`ProviderRejected` (the contract changed: repeating the paid call cannot fix
it).
"""

from __future__ import annotations

import email.utils
import json
import time
from dataclasses import dataclass
from typing import Any

import httpx

from core.errors import ProviderRejected, ProviderUnavailable

__all__ = [
    "Downloaded",
    "MysticTask",
    "RemovedBackground",
    "invalid_params",
    "json_object",
    "maybe_json",
    "message_of",
    "mystic_task",
    "parse_retry_after",
    "text_field",
]


@dataclass(frozen=True)
class RemovedBackground:
    """The remove-background answer: result URLs (valid 5 minutes) and requests made."""

    high_resolution: str
    preview: str | None
    original: str | None
    url: str | None
    attempts: int


@dataclass(frozen=True)
class MysticTask:
    """A Mystic task as the submit or the poll answer describes it (either shape)."""

    task_id: str
    status: str
    generated: tuple[str, ...]
    error: str | None
    attempts: int


@dataclass(frozen=True)
class Downloaded:
    """A downloaded result file."""

    data: bytes
    content_type: str | None
    attempts: int


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta seconds or an HTTP date).

    >>> parse_retry_after("7")
    7.0
    >>> parse_retry_after("soon") is None
    True
    """
    if not value or not value.strip():
        return None
    text = value.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    current = time.time() if now is None else now
    return max(0.0, when.timestamp() - current)


def invalid_params(body: object) -> list[str]:
    """``"param (reason)"`` for every ``invalid_params`` entry, keyed ``name`` or ``field``."""
    entries = body.get("invalid_params") if isinstance(body, dict) else None
    if not isinstance(entries, list):
        return []
    found: list[str] = []
    for entry in entries:
        if not isinstance(entry, dict):
            continue
        param = entry.get("name") or entry.get("field") or "?"
        reason = entry.get("reason") or entry.get("message")
        found.append(f"{param} ({reason})" if reason else str(param))
    return found


def maybe_json(response: httpx.Response) -> object:
    try:
        return response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None


def json_object(response: httpx.Response, what: str) -> dict[str, Any]:
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ProviderUnavailable(
            f"Freepik {what} answered HTTP {response.status_code} with a body that is not JSON"
        ) from exc
    if not isinstance(body, dict):
        raise ProviderRejected(f"Freepik {what} answered JSON that is not an object")
    return body


def text_field(body: dict[str, Any], name: str) -> str | None:
    value = body.get(name)
    return value if isinstance(value, str) else None


def message_of(response: httpx.Response) -> str:
    body = maybe_json(response)
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        return str(body["message"])[:300]
    return (response.reason_phrase or "no message")[:300]


def mystic_task(body: dict[str, Any], attempts: int) -> MysticTask:
    """Accept ``{"data": {...}}`` and the bare object; ``status`` or ``task_status``."""
    data = body.get("data", body)
    if not isinstance(data, dict):
        raise ProviderRejected("Freepik Mystic answered without a task object")
    task_id = data.get("task_id")
    status = data.get("status") or data.get("task_status")
    if not isinstance(task_id, str) or not task_id or not isinstance(status, str):
        raise ProviderRejected("Freepik Mystic answered without task_id/status")
    generated = data.get("generated") or []
    urls = tuple(
        item if isinstance(item, str) else str(item.get("url", ""))
        for item in generated
        if isinstance(item, str | dict)
    )
    error = data.get("error")
    return MysticTask(
        task_id=task_id,
        status=status.upper(),
        generated=tuple(u for u in urls if u),
        error=str(error)[:300] if error else None,
        attempts=attempts,
    )

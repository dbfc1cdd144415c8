"""What an event says: its type for a job status, and its JSON body, never over 64 KB.

Every status that has an event is named in ``EVENT_TYPES`` and nowhere else: a status added to
``JobStatus`` (``NEEDS_REVIEW``, ``REJECTED``) gets its event from this table alone.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any

from core.events.table import MAX_BODY_BYTES
from core.tables import Job, as_utc

__all__ = ["EVENT_TYPES", "PING_TYPE", "encode", "event_type", "job_body", "ping_body"]

# docs/events.md, "When events are sent": the job statuses that send an event, and the event's type.
EVENT_TYPES: dict[str, str] = {
    "DONE": "job.done",
    "FAILED": "job.failed",
    "NEEDS_REVIEW": "job.needs_review",
    "REJECTED": "job.rejected",
}
PING_TYPE = "ping"
_MARK = "…[truncated]"
_SHORTEST = 64


def event_type(status: object) -> str | None:
    """The event type a job sends on reaching ``status`` (an enum or its value), or None."""
    return EVENT_TYPES.get(str(getattr(status, "value", status)))


def _iso(moment: datetime) -> str:
    return as_utc(moment).isoformat().replace("+00:00", "Z")


def _quality(job: Job) -> Any:
    """The job's quality object once the quality gates store one (JSON text or a mapping)."""
    value = getattr(job, "quality", None)
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return None
    return value if isinstance(value, dict) else None


def job_body(
    job: Job,
    *,
    event_id: uuid.UUID,
    type_: str,
    created_at: datetime,
    manifest_url: str | None,
) -> str:
    """The event's JSON text for ``job`` as it is now (docs/events.md, "Format")."""
    document: dict[str, Any] = {
        "id": str(event_id),
        "type": type_,
        "createdAt": _iso(created_at),
        "job": {
            "jobId": str(job.id),
            "sku": job.sku,
            "sha256": job.sha256,
            "theme": job.theme,
            "status": str(getattr(job.status, "value", job.status)),
            "error": job.error,
            "costUsd": job.cost_usd,
            "manifestKey": job.manifest_key,
            "manifestUrl": manifest_url,
            "quality": _quality(job),
        },
    }
    return encode(document)


def ping_body(*, event_id: uuid.UUID, created_at: datetime) -> str:
    """A ``ping`` event: no job, so a receiver can check its verification code."""
    return encode({"id": str(event_id), "type": PING_TYPE, "createdAt": _iso(created_at)})


def _dumps(document: dict[str, Any]) -> str:
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False, default=str)


def _size(document: dict[str, Any]) -> int:
    return len(_dumps(document).encode())


def _cut(value: Any, limit: int) -> Any:
    """``value`` with every string longer than ``limit`` characters cut and marked."""
    if isinstance(value, str) and len(value) > limit:
        return value[:limit] + _MARK
    if isinstance(value, dict):
        return {key: _cut(item, limit) for key, item in value.items()}
    if isinstance(value, list):
        return [_cut(item, limit) for item in value]
    return value


def encode(document: dict[str, Any], *, limit: int = MAX_BODY_BYTES) -> str:
    """Compact JSON of ``document``, at most ``limit`` bytes in UTF-8.

    An oversized event loses text, never its identity: the job's ``error`` and the strings of
    its ``quality`` are cut (marked ``…[truncated]``) ever shorter; then the quality's checks
    are dropped (``"truncated": true`` stays); then the error and the quality go.

    Raises:
        ValueError: the document is still too large (only its fixed fields remain).
    """
    if _size(document) <= limit:
        return _dumps(document)
    job = dict(document.get("job") or {})
    shrunk = {**document, "job": job}
    longest = max(len(str(job.get("error") or "")), len(json.dumps(job.get("quality"))))
    while longest > _SHORTEST and _size(shrunk) > limit:
        longest //= 2
        job["error"] = _cut(document["job"].get("error"), longest)
        job["quality"] = _cut(document["job"].get("quality"), longest)
    quality = job.get("quality")
    if _size(shrunk) > limit and isinstance(quality, dict):
        job["quality"] = {
            **{k: v for k, v in quality.items() if k in ("verdict", "score")},
            "truncated": True,
        }
    if _size(shrunk) > limit:
        job["error"], job["quality"] = _cut(job.get("error"), 0), None
    if _size(shrunk) > limit:
        raise ValueError(f"event {document.get('id')} does not fit in {limit} bytes")
    return _dumps(shrunk)

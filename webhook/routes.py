"""The webhook endpoint, the job status endpoint and the health check (docs/architecture.md).

The delivery path does no Prefect call: verify, validate, one short transaction, answer. The
dispatcher creates the flow run right after (``webhook.dispatcher``).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Sequence

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool

from core import jobs
from core.db import begin_write, get_engine, is_transient_db_error, session_scope
from core.schemas import ImageJobSpec, JobView
from core.urls import redact_url
from webhook.db import read
from webhook.deps import ApiError, Context, RawBody
from webhook.logs import get_logger
from webhook.notifier import outbox_backlog
from webhook.schemas import Accepted, Duplicate, ErrorBody, FieldError, ImageEvent, parse_event
from webhook.security import SIGNATURE_HEADER, SignatureError, verify_signature

__all__ = ["router"]

router = APIRouter()
log = get_logger("packshot.webhook")

_ERRORS: dict[int | str, dict[str, object]] = {
    code: {"model": ErrorBody, "description": text}
    for code, text in (
        (400, "body is not JSON"),
        (401, "signature missing, wrong or outside the 300 s window"),
        (408, "body not received within the body deadline; the connection is closed"),
        (413, "body over the size limit"),
        (422, "a field is invalid; `details` names it"),
        (503, "database unavailable: deliver again later"),
    )
}


def store_deliveries(url: str, specs: Sequence[ImageJobSpec]) -> list[jobs.Enqueued]:
    """For each delivery: insert the job (waiting for dispatch), requeue it if it FAILED, or
    find it; all in one transaction (``DbRunner.grouped``), which takes SQLite's write lock
    the moment another process releases it (``begin_write``)."""
    with session_scope(url) as session:
        begin_write(session)
        return [jobs.enqueue_job(session, spec=spec) for spec in specs]


def _view(url: str, job_id: uuid.UUID) -> JobView | None:
    with Session(get_engine(url)) as session:
        return jobs.job_view(session, job_id=job_id)


def _unavailable(exc: SQLAlchemyError, message: str) -> ApiError:
    """503 for a database that is down or restarting; anything else is a bug: re-raised."""
    if not is_transient_db_error(exc):
        raise exc
    return ApiError(503, "unavailable", message)


def _check_signature(request: Request, ctx: Context, body: bytes) -> None:
    if ctx.secret is None:
        return
    try:
        verify_signature(ctx.secret, request.headers.get(SIGNATURE_HEADER), body)
    except SignatureError as exc:
        client = request.client.host if request.client else None
        log.warning("delivery.rejected", status=401, reason=exc.reason, client=client)
        raise ApiError(401, "invalid_signature") from None


def _event(body: bytes, ctx: Context) -> ImageEvent:
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        log.warning("delivery.rejected", status=400, reason="not JSON", bytes=len(body))
        raise ApiError(400, "invalid_payload", "body is not valid JSON") from None
    event = parse_event(document)
    errors: list[FieldError] = event if isinstance(event, list) else []
    if isinstance(event, ImageEvent):
        unknown = ctx.themes.unknown(event.theme)
        if unknown:
            errors = [FieldError(field="theme", message=unknown)]
    if errors:
        details = [e.model_dump() for e in errors]
        log.warning("delivery.rejected", status=422, fields=",".join(e.field for e in errors))
        raise ApiError(422, "invalid_payload", "invalid fields", details=details)
    assert isinstance(event, ImageEvent)
    return event


@router.post(
    "/api/webhooks/3jms/images",
    status_code=202,
    response_model=Accepted,
    responses={200: {"model": Duplicate, "description": "already known"}, **_ERRORS},
)
async def receive_image(request: Request, ctx: Context, body: RawBody) -> JSONResponse:
    """A 3JMS "new image" delivery: store the job and answer; its flow run follows shortly."""
    started = time.perf_counter()
    _check_signature(request, ctx, body)
    event = _event(body, ctx)
    try:
        stored = await ctx.store(event.to_spec())
    except SQLAlchemyError as exc:
        log.error("delivery.db_unavailable", error=type(exc).__name__, sku=event.sku)
        raise _unavailable(exc, "database unavailable, deliver again") from None
    if stored.queued and ctx.dispatcher is not None:
        ctx.dispatcher.notify()
    log.info(
        f"delivery.{stored.outcome}",
        job_id=str(stored.job_id),
        sku=event.sku,
        theme=event.theme,
        sha256=event.sha256[:12],
        image_url=redact_url(event.image_url),
        status=stored.status,
        ms=round((time.perf_counter() - started) * 1000, 2),
    )
    job_id = str(stored.job_id)
    if stored.queued:  # "created", or "requeued": a FAILED job tries again with this URL
        return JSONResponse({"jobId": job_id, "status": stored.outcome}, status_code=202)
    return JSONResponse({"jobId": job_id, "status": stored.status, "duplicate": True})


@router.get(
    "/api/jobs/{job_id}",
    response_model=JobView,
    response_model_by_alias=True,
    responses={404: {"model": ErrorBody, "description": "no such job"}},
)
async def read_job(job_id: str, ctx: Context) -> JSONResponse:
    """The job with its steps, assets, manifest key and flow run id."""
    try:
        key = uuid.UUID(job_id)
    except ValueError:
        raise ApiError(404, "not_found", "no such job") from None
    try:
        view = await run_in_threadpool(_view, ctx.db.url, key)
    except SQLAlchemyError as exc:
        raise _unavailable(exc, "database unavailable, ask again") from None
    if view is None:
        raise ApiError(404, "not_found", "no such job")
    return JSONResponse(view.model_dump(mode="json", by_alias=True))


@router.get("/healthz")
async def healthz(ctx: Context) -> JSONResponse:
    """200 when the database answers and the dispatcher (if enabled) is running, else 503."""
    backlog: int | None = None
    try:
        backlog = await run_in_threadpool(read, ctx.db.url, jobs.count_pending_dispatch)
        db = "ok"
    except SQLAlchemyError as exc:
        db = f"error: {type(exc).__name__}"
    dispatcher: dict[str, object] = {"enabled": ctx.dispatcher is not None, "alive": False}
    if ctx.dispatcher is not None:
        dispatcher.update(ctx.dispatcher.status())
        dispatcher["alive"] = ctx.dispatcher_alive()
    events = await _events_health(ctx)
    healthy = (
        db == "ok"
        and (ctx.dispatcher is None or bool(dispatcher["alive"]))
        and (ctx.notifier is None or bool(events["alive"]))
    )
    body = {
        "status": "ok" if healthy else "degraded",
        "db": db,
        "backlog": backlog,
        "signatures": "required" if ctx.secret else "off",
        "dispatcher": dispatcher,
        "events": events,
    }
    return JSONResponse(body, status_code=200 if healthy else 503)


async def _events_health(ctx: Context) -> dict[str, object]:
    """The outbox: deliveries not yet done, the oldest one's age, dead ones, the sender."""
    events: dict[str, object] = {
        "enabled": ctx.notifier is not None,
        "targets": len(ctx.settings.notify_targets),
        "alive": ctx.notifier_alive(),
    }
    try:
        backlog = await run_in_threadpool(outbox_backlog, ctx.db.url)
    except SQLAlchemyError:
        return events
    events.update(
        backlog=backlog.pending, oldestWaitingAgeS=backlog.oldest_pending_s, dead=backlog.dead
    )
    if ctx.notifier is not None:
        events["sender"] = ctx.notifier.status()
    return events

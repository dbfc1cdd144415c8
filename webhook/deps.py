"""What the routes depend on: the app's context and the size-limited raw body.

The database runner the context carries is ``webhook.db.DbRunner``.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Request

from core.errors import ConfigurationError, InputError
from core.settings import Settings
from core.themes import load_themes, resolve_theme
from webhook.db import DbRunner, Grouped
from webhook.logs import get_logger

if TYPE_CHECKING:
    from core.jobs import Enqueued
    from core.schemas import ImageJobSpec
    from webhook.dispatcher import Dispatcher
    from webhook.notifier import Notifier

__all__ = [
    "ApiError",
    "Context",
    "RawBody",
    "ThemeCatalog",
    "WebhookContext",
    "get_context",
    "raw_body",
]

log = get_logger("packshot.webhook")


class ApiError(Exception):
    """An answer other than success: status code and JSON body (see ``schemas.ErrorBody``)."""

    def __init__(
        self,
        status_code: int,
        error: str,
        message: str | None = None,
        details: list[dict[str, str]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(error)
        self.status_code = status_code
        self.headers = headers
        self.body: dict[str, object] = {"error": error}
        if message:
            self.body["message"] = message
        if details is not None:
            self.body["details"] = details


class ThemeCatalog:
    """Known theme names, reloaded when the themes file changes (checked by mtime per lookup)."""

    def __init__(self, themes_file: Path | None) -> None:
        self._file = themes_file
        self._lock = threading.Lock()
        self._stamp = self._mtime()
        self._names = frozenset(load_themes(themes_file))  # a broken file fails at start-up

    def _mtime(self) -> int | None:
        if self._file is None:
            return None
        try:
            return self._file.stat().st_mtime_ns
        except OSError:
            return -1

    def unknown(self, name: str) -> str | None:
        """None when ``name`` is a known theme, else the message to show (lists known ones)."""
        stamp = self._mtime()
        if stamp != self._stamp:
            with self._lock:
                # A broken file keeps the last good set; the flow reports the file itself.
                with contextlib.suppress(ConfigurationError):
                    self._names = frozenset(load_themes(self._file))
                self._stamp = stamp
        if name in self._names:
            return None
        try:
            resolve_theme(name, self._file)
        except (InputError, ConfigurationError) as exc:
            return str(exc)
        return None


@dataclass
class WebhookContext:
    """Everything a request needs, built once in the app's lifespan."""

    settings: Settings
    db: DbRunner
    # Stores one delivery, grouped with those queued meanwhile (routes.store_deliveries).
    store: Grouped[ImageJobSpec, Enqueued]
    themes: ThemeCatalog
    secret: bytes | None
    dispatcher: Dispatcher | None = None
    dispatcher_task: asyncio.Task[None] | None = None
    notifier: Notifier | None = None
    notifier_task: asyncio.Task[None] | None = None

    def notifier_alive(self) -> bool:
        """The in-process event sender is running."""
        return self.notifier_task is not None and not self.notifier_task.done()

    def dispatcher_alive(self) -> bool:
        """The in-process dispatcher loop is running."""
        return self.dispatcher_task is not None and not self.dispatcher_task.done()


async def get_context(request: Request) -> WebhookContext:
    """The context of the running app (async: a sync dependency would cost a thread hop)."""
    return request.app.state.ctx


Context = Annotated[WebhookContext, Depends(get_context)]


async def raw_body(request: Request, ctx: Context) -> bytes:
    """The request body, read before any parsing, cut off past the size limit (413) and
    past the body deadline (408, connection closed).

    A declared Content-Length over the limit is refused before reading; the limit is enforced
    again while reading, so a chunked body or a wrong Content-Length cannot get past it. The
    whole body must arrive within ``PACKSHOT_WEBHOOK_BODY_TIMEOUT_S``: HTTP servers time out
    idle connections, not a body that trickles or stalls, which would hold the request open.
    """
    limit = ctx.settings.webhook_max_body_bytes
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise ApiError(400, "invalid_payload", "Content-Length is not a number")
        if int(declared) > limit:
            raise ApiError(413, "invalid_payload", f"body larger than {limit} bytes")
    seconds = ctx.settings.webhook_body_timeout_s
    try:
        async with asyncio.timeout(seconds):
            return await _read_capped(request, limit)
    except TimeoutError:
        client = request.client.host if request.client else None
        log.warning("delivery.rejected", status=408, reason="body timeout", client=client)
        raise ApiError(
            408,
            "timeout",
            f"request body not received within {seconds:g} s",
            headers={"connection": "close"},  # the rest of the body may still be on its way
        ) from None


async def _read_capped(request: Request, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, "invalid_payload", f"body larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


RawBody = Annotated[bytes, Depends(raw_body)]

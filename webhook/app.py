"""The webhook's FastAPI app: ``create_app()`` and its lifespan (schema, themes, dispatcher).

Served by ``packshot up`` and ``packshot webhook`` as
``uvicorn webhook.app:create_app --factory --host $PACKSHOT_BIND --port $PACKSHOT_WEBHOOK_PORT``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy.engine import make_url

from core.checkpoint import Checkpointer
from core.db import upgrade_schema
from core.errors import ConfigurationError
from core.heap import freeze_startup_heap
from core.settings import Settings, get_settings
from webhook.db import DbRunner
from webhook.deps import ApiError, ThemeCatalog, WebhookContext
from webhook.logs import configure_logging, get_logger
from webhook.routes import router, store_deliveries

__all__ = ["create_app"]

log = get_logger("packshot.webhook")
_STOP_GRACE_S = 10.0


async def _api_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return JSONResponse(exc.body, status_code=exc.status_code, headers=exc.headers)


async def _stop(task: asyncio.Task[None], stop: asyncio.Event) -> None:
    stop.set()
    try:
        await asyncio.wait_for(asyncio.shield(task), timeout=_STOP_GRACE_S)
    except TimeoutError:
        task.cancel()  # a run creation still in flight: its job stays waiting, nothing is lost
        with contextlib.suppress(asyncio.CancelledError):
            await task


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    upgrade_schema(settings.database_url)
    configured = settings.webhook_secret
    secret = configured.get_secret_value().encode() if configured else None
    if secret is None:
        log.warning(
            "webhook.unsigned",
            message="PACKSHOT_WEBHOOK_SECRET is not set: signature checks are OFF, "
            "anyone who can reach this port can submit jobs",
        )
    db = DbRunner(settings.database_url)
    checkpoints = Checkpointer(settings.database_url)  # never inside a delivery's commit
    checkpoints.start()
    ctx = WebhookContext(
        settings=settings,
        db=db,
        store=db.grouped(partial(store_deliveries, settings.database_url)),
        themes=ThemeCatalog(settings.themes_file),
        secret=secret,
    )
    stop = asyncio.Event()
    recovery: asyncio.Task[None] | None = None
    if settings.dispatcher_enabled:
        from webhook.dispatcher import Dispatcher
        from webhook.recovery import run_recovery

        ctx.dispatcher = Dispatcher(settings, db=ctx.db)
        ctx.dispatcher_task = asyncio.create_task(
            ctx.dispatcher.run(stop), name="packshot-dispatcher"
        )
        await asyncio.sleep(0)  # its synchronous set-up runs now, before requests are served
        recovery = asyncio.create_task(
            run_recovery(
                settings,
                stop,
                db=ctx.db,
                api_url=ctx.dispatcher.api_url,
                on_requeue=ctx.dispatcher.notify,
            ),
            name="packshot-recovery",
        )
    if settings.notify_sender_enabled and settings.notify_targets:
        from webhook.notifier import Notifier

        ctx.notifier = Notifier(settings, db=ctx.db)
        ctx.notifier_task = asyncio.create_task(ctx.notifier.run(stop), name="packshot-notifier")
    app.state.ctx = ctx
    freeze_startup_heap()  # what start-up built lives as long as the process: never walked again
    log.info(
        "webhook.started",
        database=make_url(settings.database_url).render_as_string(hide_password=True),
        signatures="required" if secret else "off",
        dispatcher="on" if ctx.dispatcher else "off",
        events="on" if ctx.notifier else "off",
    )
    try:
        yield
    finally:
        if ctx.dispatcher_task is not None:
            await _stop(ctx.dispatcher_task, stop)
        if recovery is not None:
            await _stop(recovery, stop)
        if ctx.notifier_task is not None:
            await _stop(ctx.notifier_task, stop)
        ctx.db.close()
        checkpoints.stop()


def create_app(settings: Settings | None = None) -> FastAPI:
    """The webhook app; ``settings`` default to the environment's (``PACKSHOT_*``).

    In the production profile it refuses to start without a webhook secret, and serves no
    API documentation (``/docs``, ``/redoc``, ``/openapi.json``): nobody outside needs a map.

    Raises:
        ConfigurationError: production profile without ``PACKSHOT_WEBHOOK_SECRET``.
    """
    settings = settings or get_settings()
    configure_logging(settings.log_level)
    production = settings.profile == "production"
    if production and settings.webhook_secret is None:
        raise ConfigurationError(
            "PACKSHOT_WEBHOOK_SECRET must be set: production refuses unsigned deliveries"
        )
    app = FastAPI(
        title="Packshot webhook",
        summary="3JMS image events in, jobs and their status out.",
        lifespan=_lifespan,
        docs_url=None if production else "/docs",
        redoc_url=None if production else "/redoc",
        openapi_url=None if production else "/openapi.json",
    )
    app.state.settings = settings
    app.add_exception_handler(ApiError, _api_error)
    app.include_router(router)
    return app

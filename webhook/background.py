"""The webhook's background loops in a process of their own: dispatcher, recovery, events.

``packshot webhook`` runs them inside the webhook process. ``packshot up`` runs them here
instead (``packshot dispatcher``), so that creating flow runs, reading Prefect for crashed runs
and sending events never take the CPU or the interpreter lock from a request being answered:
the webhook process only checks, stores and answers. The dispatcher then learns of new jobs by
polling the job table every ``PACKSHOT_DISPATCH_POLL_S`` (an indexed count, cheap).
"""

from __future__ import annotations

import asyncio
import signal

from core.db import upgrade_schema
from core.heap import freeze_startup_heap
from core.settings import Settings, get_settings
from webhook.db import DbRunner
from webhook.dispatcher import Dispatcher
from webhook.logs import configure_logging, get_logger
from webhook.recovery import run_recovery

__all__ = ["run_background", "serve_background"]

log = get_logger("packshot.webhook.background")


async def run_background(settings: Settings, stop: asyncio.Event) -> None:
    """Dispatcher, crash recovery and (when configured) the event sender, until ``stop``."""
    upgrade_schema(settings.database_url)
    db = DbRunner(settings.database_url)
    try:
        async with Dispatcher(settings, db=db) as dispatcher:
            loops = [
                dispatcher.run(stop),
                run_recovery(
                    settings, stop, db=db, api_url=dispatcher.api_url, on_requeue=dispatcher.notify
                ),
            ]
            if settings.notify_sender_enabled and settings.notify_targets:
                from webhook.notifier import Notifier

                loops.append(Notifier(settings, db=db).run(stop))
            freeze_startup_heap()  # Prefect's client is imported: no full collection walks it
            log.info("background.started", loops=len(loops))
            await asyncio.gather(*loops)
    finally:
        db.close()


def serve_background(settings: Settings) -> None:
    """``run_background`` until SIGINT or SIGTERM (``packshot dispatcher``, ``python -m``)."""

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        await run_background(settings, stop)
        log.info("background.stopped")

    asyncio.run(main())


if __name__ == "__main__":
    configure_logging(get_settings().log_level)
    serve_background(get_settings())

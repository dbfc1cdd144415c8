"""The event sender beside the dispatcher: ``core.events.sender.Sender`` on a thread of its own.

The sender's work is synchronous (database, httpx); it runs in one worker thread for the life
of the webhook, so the event loop only starts and stops it. Stopping lets the batch in flight
finish (its answers are recorded); a batch cut off by a hard stop is sent again once its claim
lapses, with the same event ids.
"""

from __future__ import annotations

import asyncio
import threading

from core.db import session_scope
from core.events import outbox
from core.events.sender import Sender
from core.settings import Settings
from webhook.db import DbRunner
from webhook.logs import get_logger

__all__ = ["Notifier", "outbox_backlog"]

log = get_logger("packshot.webhook.notifier")


def outbox_backlog(url: str) -> outbox.Backlog:
    """Deliveries not yet done, the oldest one's age, dead ones (``/healthz``)."""
    with session_scope(url) as session:
        return outbox.backlog(session)


class Notifier:
    """Runs a ``Sender`` until the webhook stops; ``status()`` for ``/healthz``."""

    def __init__(self, settings: Settings, *, db: DbRunner) -> None:
        self.settings = settings
        self.sender = Sender(settings)
        self._db = db
        self._halt = threading.Event()
        if not settings.notify_secrets:
            log.warning(
                "events.unsigned",
                message="PACKSHOT_NOTIFY_SECRET is not set: events are sent without a signature",
            )

    def status(self) -> dict[str, object]:
        """The sender's counters and last error."""
        return self.sender.status()

    async def run(self, stop: asyncio.Event) -> None:
        """Send events until ``stop`` is set, then let the batch in flight finish."""
        log.info("notifier.started", targets=len(self.settings.notify_targets))
        worker = asyncio.ensure_future(asyncio.to_thread(self.sender.run, self._halt))
        waiter = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait({worker, waiter}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self._halt.set()
            waiter.cancel()
            try:
                await worker
            finally:
                await asyncio.to_thread(self.sender.close)
                log.info("notifier.stopped", **self.sender.status())

"""The event sender: claims due deliveries, POSTs them signed, records each answer, backs off.

Any 2xx is a success. Anything else (another status, a redirect, a timeout, a refused or
unreachable target) is tried again after ``PACKSHOT_NOTIFY_BACKOFF_FIRST_S`` doubling up to
``PACKSHOT_NOTIFY_BACKOFF_MAX_S`` (each wait drawn between half and all of that, so targets
that failed together are not all retried together), with the same event id and body, until
``PACKSHOT_NOTIFY_GIVE_UP_S`` have passed: then the delivery is ``dead``. Deliveries of one
claimed batch go to different (job, target) pairs (``core.events.outbox``), so they are sent
side by side without breaking the order of a job's events.

The secret never leaves this module except inside the signature: it is not logged, stored or
put in an error. The webhook runs ``run_once`` beside its dispatcher; ``packshot notify`` runs
``run`` alone.
"""

from __future__ import annotations

import logging
import random
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx

from core.backoff import backoff_s
from core.db import retrying, session_scope, upgrade_schema
from core.errors import InputError, ProviderUnavailable
from core.events import outbox
from core.events.body import PING_TYPE, ping_body
from core.events.transport import deadline, new_client
from core.settings import Settings
from core.signing import signature
from core.tables import utcnow
from core.urls import redact_url, redact_urls

__all__ = ["SIGNATURE_HEADER", "Answer", "Sender", "post_event", "send_ping"]

log = logging.getLogger("packshot.events")

SIGNATURE_HEADER = "X-Packshot-Signature"
_SNIPPET = 200
_DRAIN = 64 * 1024


@dataclass(frozen=True)
class Answer:
    """What one POST got: ``ok`` for a 2xx; ``status`` when an HTTP answer came back."""

    ok: bool
    status: int | None = None
    error: str | None = None


def _snippet(response: httpx.Response) -> str:
    """The start of the receiver's answer, on one line (its own words help the operator)."""
    raw = b""
    for chunk in response.iter_raw():
        if len(raw) < _SNIPPET * 4:
            raw += chunk
        if response.num_bytes_downloaded > _DRAIN:  # read no more than a small answer
            break
    text = " ".join(raw.decode("utf-8", "replace").split())
    return text[:_SNIPPET]


def post_event(
    client: httpx.Client,
    target: str,
    body: str,
    *,
    event_id: uuid.UUID,
    type_: str,
    secrets: list[str],
    timeout_s: float,
) -> Answer:
    """POST one event to ``target`` with the contract's headers, within ``timeout_s`` in total."""
    raw = body.encode()
    headers = {
        "Content-Type": "application/json",
        "X-Packshot-Event": type_,
        "X-Packshot-Delivery": str(event_id),
    }
    if secrets:
        headers[SIGNATURE_HEADER] = signature(secrets, raw, int(time.time()))
    try:
        with deadline(timeout_s), client.stream("POST", target, content=raw, headers=headers) as r:
            status, snippet = r.status_code, _snippet(r)
    except InputError as exc:  # core.netguard refused the target's address
        return Answer(ok=False, error=f"refused: {exc}")
    except ProviderUnavailable as exc:  # the name does not resolve (now)
        return Answer(ok=False, error=str(exc)[:500])
    except httpx.TimeoutException:
        return Answer(ok=False, error=f"no answer within {timeout_s:g} s")
    except httpx.HTTPError as exc:
        return Answer(ok=False, error=redact_urls(f"{type(exc).__name__}: {exc}")[:500])
    if 200 <= status < 300:
        return Answer(ok=True, status=status)
    reason = "redirect not followed" if 300 <= status < 400 else snippet
    return Answer(
        ok=False, status=status, error=f"HTTP {status}" + (f": {reason}" if reason else "")
    )


def _client(settings: Settings) -> httpx.Client:
    return new_client(
        allow_private=settings.notify_allow_private,
        connect_timeout_s=settings.notify_connect_timeout_s,
        timeout_s=settings.notify_timeout_s,
    )


def send_ping(
    settings: Settings, target: str, *, client: httpx.Client | None = None
) -> tuple[uuid.UUID, Answer]:
    """POST a signed ``ping`` event to ``target`` now (not through the outbox): (its id, answer)."""
    event_id = uuid.uuid4()
    body = ping_body(event_id=event_id, created_at=utcnow())
    own = client is None
    http = client or _client(settings)
    try:
        return event_id, post_event(
            http,
            target,
            body,
            event_id=event_id,
            type_=PING_TYPE,
            secrets=settings.notify_secrets,
            timeout_s=settings.notify_timeout_s,
        )
    finally:
        if own:
            http.close()


@dataclass
class _Status:
    running: bool = False
    delivered: int = 0
    failed: int = 0
    last_error: str | None = None
    last_delivery_at: datetime | None = None


class Sender:
    """Delivers the outbox of ``settings.database_url``; one per process is enough.

    Args:
        settings: the ``notify_*`` settings and the database.
        client: the HTTP client (tests); by default one built by ``transport.new_client``.
        rng: jitter source (tests pass a seeded one).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        client: httpx.Client | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.settings = settings
        self._url = settings.database_url
        self._client = client or _client(settings)
        self._rng = rng or random.Random()
        self._pool = ThreadPoolExecutor(settings.notify_concurrency, "packshot-notify")
        self._status = _Status()
        # A claim outlives one delivery and the database retries that may follow it.
        self.lease_s = settings.notify_timeout_s + settings.db_retry_s + 10.0

    def close(self) -> None:
        """Stop the delivery threads and close the HTTP client."""
        self._pool.shutdown(wait=True)
        self._client.close()

    def status(self) -> dict[str, object]:
        """For ``/healthz``: alive, counters since start, the last error."""
        s = self._status
        return {
            "alive": s.running,
            "delivered": s.delivered,
            "failed": s.failed,
            "lastError": s.last_error,
            "lastDeliveryAt": s.last_delivery_at.isoformat() if s.last_delivery_at else None,
        }

    def _claim(self) -> list[outbox.Claimed]:
        def claim() -> list[outbox.Claimed]:
            with session_scope(self._url) as session:
                return outbox.claim_due(
                    session, limit=self.settings.notify_batch, lease_s=self.lease_s
                )

        return retrying(claim, what="claim events")

    def _deliver(self, claimed: outbox.Claimed) -> outbox.Result:
        answer = post_event(
            self._client,
            claimed.target,
            claimed.body,
            event_id=claimed.event_id,
            type_=claimed.type,
            secrets=self.settings.notify_secrets,
            timeout_s=self.settings.notify_timeout_s,
        )
        return outbox.Result(claimed, answer.ok, answer.status, answer.error)

    def _retry_at(self, result: outbox.Result, now: datetime) -> datetime | None:
        """When to try a failed delivery again; None once its give-up window has passed."""
        claimed = result.claimed
        if (now - claimed.retry_since).total_seconds() >= self.settings.notify_give_up_s:
            return None
        wait = backoff_s(
            claimed.attempts,
            first=self.settings.notify_backoff_first_s,
            cap=self.settings.notify_backoff_max_s,
            rng=self._rng,
        )
        return now + timedelta(seconds=wait)

    def _record(self, results: list[outbox.Result]) -> None:
        now = utcnow()
        retry_at = {r.claimed.id: self._retry_at(r, now) for r in results if not r.delivered}

        def record() -> None:
            with session_scope(self._url) as session:
                outbox.record_results(session, results=results, retry_at=retry_at, now=now)

        retrying(record, what="record event deliveries", patience_s=self.lease_s)
        self._count(results, retry_at)

    def _count(self, results: list[outbox.Result], retry_at: dict[int, datetime | None]) -> None:
        s = self._status
        for result in results:
            claimed = result.claimed
            where = redact_url(claimed.target)
            if result.delivered:
                s.delivered += 1
                s.last_delivery_at = utcnow()
                log.debug("event %s delivered to %s", claimed.event_id, where)
                continue
            s.failed += 1
            s.last_error = f"{where}: {result.error}"
            dead = retry_at.get(claimed.id) is None
            log.warning(
                "event %s to %s failed (attempt %d, %s): %s",
                claimed.event_id,
                where,
                claimed.attempts,
                "dead: given up" if dead else "will retry",
                result.error,
            )

    def run_once(self) -> int:
        """Claim one batch of due deliveries, send them side by side, record the answers.

        Returns how many were sent (0: nothing was due).
        """
        claimed = self._claim()
        if not claimed:
            return 0
        results = list(self._pool.map(self._deliver, claimed))
        self._record(results)
        return len(results)

    def run(self, stop: threading.Event) -> None:
        """Send until ``stop`` is set; the database being down only delays (logged, retried)."""
        upgrade_schema(self._url)
        self._status.running = True
        failures = 0
        try:
            while not stop.is_set():
                try:
                    sent = self.run_once()
                    failures = 0
                except Exception as exc:  # noqa: BLE001  (database down: wait, never die)
                    failures += 1
                    self._status.last_error = redact_urls(f"database: {type(exc).__name__}")
                    log.warning("event sender: %s; retrying", self._status.last_error)
                    stop.wait(backoff_s(failures + 1, first=0.5, cap=30.0, jitter=0))
                    continue
                if not sent:
                    stop.wait(self.settings.notify_poll_s)
        finally:
            self._status.running = False

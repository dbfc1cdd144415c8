"""The outbox dispatcher: creates the flow run of every job the webhook accepted, one at a time.

The job row is the outbox. The webhook commits a job with ``dispatch_pending`` set and answers
202; this loop picks waiting jobs oldest first, calls ``flows.trigger.trigger_job`` (one
reused Prefect client, ``timeout=0``, idempotency key = the job id) and records the flow run id.
Nothing is kept in memory that a restart could lose:

- Prefect unreachable, 5xx, or the deployment missing: the job stays waiting (attempt count and
  last error kept) and the loop backs off (exponential, capped, jittered) before trying again.
  Other failures concern one job: it is retried later, and the jobs behind it go on.
- A crash after Prefect created the run but before it was recorded: the next attempt sends the
  same permanent idempotency key and Prefect answers with the run it already has.
- On PostgreSQL a claimed job stays locked (``FOR UPDATE SKIP LOCKED``) while its run is being
  created, so several webhook replicas can each run a dispatcher. On SQLite run one dispatcher per
  database (a second one would only repeat calls, which the idempotency key makes harmless).

Serial creation is deliberate: concurrent run creation on Prefect's SQLite fails under bursts
(docs/prefect.md, "Starting runs from the webhook"). Run it inside the webhook (the default)
or alone with ``run_dispatcher``.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import TracebackType
from typing import TYPE_CHECKING

from sqlmodel import Session

from core import jobs
from core.backoff import backoff_s
from core.db import get_engine, is_transient_db_error, upgrade_schema
from core.settings import Settings
from core.tables import utcnow
from core.urls import redact_urls
from flows.trigger import PROCESS_IMAGE_DEPLOYMENT, JobRef, trigger_job
from webhook.db import DbRunner
from webhook.logs import get_logger

if TYPE_CHECKING:
    from prefect.client.orchestration import PrefectClient

__all__ = [
    "DispatchResult",
    "Dispatcher",
    "backoff_delay",
    "is_transient",
    "prefect_api_url",
    "prefect_auth_string",
    "run_dispatcher",
]

log = get_logger("packshot.webhook.dispatcher")

# One run creation; the idempotency key makes a timed-out call safe to repeat.
_CALL_TIMEOUT_S = 30.0
_BACKOFF_BASE_S = 0.5
_JOB_BACKOFF_MAX_S = 600.0


def _preload_prefect() -> None:
    """Import Prefect's client now (seconds), not on the event loop while requests are served."""
    import prefect.client.orchestration
    import prefect.deployments.flow_runs
    import prefect.exceptions
    import prefect.settings  # noqa: F401


def prefect_api_url(settings: Settings) -> str:
    """``PREFECT_API_URL`` if set, else the embedded server of ``packshot up`` (never ephemeral)."""
    return settings.prefect_api_url or f"http://127.0.0.1:{settings.prefect_port}/api"


def prefect_auth_string(settings: Settings) -> str | None:
    """``PREFECT_API_AUTH_STRING`` (or the embedded stack's generated one), if any."""
    secret = settings.prefect_api_auth_string
    return secret.get_secret_value() if secret is not None else None


def backoff_delay(attempt: int, *, cap: float, rng: random.Random | None = None) -> float:
    """Seconds to wait before retry ``attempt`` (1, 2, …): doubling from 0.5 s, capped, jittered.

    The jitter keeps half the delay fixed and draws the rest, so replicas that failed together
    do not retry together.
    """
    return backoff_s(attempt, first=_BACKOFF_BASE_S, cap=cap, rng=rng)


def is_transient(exc: BaseException) -> bool:
    """True when the failure is Prefect's, not the job's: every job would fail the same way now."""
    import httpx
    from prefect.exceptions import ObjectNotFound

    if isinstance(exc, ObjectNotFound):  # the deployment is not there (yet)
        return True
    if isinstance(exc, httpx.HTTPStatusError):
        code = exc.response.status_code
        return code >= 500 or code in (401, 403, 404, 408, 429)
    return isinstance(exc, httpx.TransportError | OSError | TimeoutError)


@dataclass(frozen=True)
class DispatchResult:
    """What one attempt did."""

    job_id: uuid.UUID
    flow_run_id: str | None = None
    error: str | None = None
    transient: bool = False
    ms: float = 0.0

    @property
    def ok(self) -> bool:
        """The flow run exists and is recorded on the job."""
        return self.flow_run_id is not None


@dataclass
class _Status:
    running: bool = False
    dispatched: int = 0
    consecutive_failures: int = 0
    last_error: str | None = None
    last_dispatch_at: datetime | None = None
    retry_at: float | None = None


def _claim(url: str) -> tuple[Session, JobRef, int] | None:
    session = Session(get_engine(url), expire_on_commit=False)
    try:
        job = jobs.claim_next_dispatch(session)
    except BaseException:
        session.close()
        raise
    if job is None:
        session.close()
        return None
    return session, JobRef.model_validate(job), job.dispatch_attempts


def _record_success(session: Session, job_id: uuid.UUID, flow_run_id: str) -> None:
    with session:
        jobs.mark_dispatched(session, job_id=job_id, flow_run_id=flow_run_id)
        session.commit()


def _record_failure(
    session: Session, job_id: uuid.UUID, error: str, retry_at: datetime | None
) -> None:
    with session:
        jobs.mark_dispatch_failed(session, job_id=job_id, error=error, retry_at=retry_at)
        session.commit()


def _backlog(url: str) -> int:
    with Session(get_engine(url)) as session:
        return jobs.count_pending_dispatch(session)


class Dispatcher:
    """Creates the flow runs of waiting jobs; ``run`` loops, ``run_once`` does one job (tests).

    Use as ``async with Dispatcher(settings) as d: await d.run(stop_event)``.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        db: DbRunner | None = None,
        api_url: str | None = None,
        deployment: str = PROCESS_IMAGE_DEPLOYMENT,
        client_retries: int = 1,
        rng: random.Random | None = None,
    ) -> None:
        self.settings = settings
        self.deployment = deployment
        self.api_url = api_url or prefect_api_url(settings)
        self._db = db or DbRunner(settings.database_url)
        self._owns_db = db is None
        self._client: PrefectClient | None = None
        self._client_retries = client_retries
        self._rng = rng or random.Random()
        self._wake = asyncio.Event()
        self._status = _Status()
        _preload_prefect()

    async def __aenter__(self) -> Dispatcher:
        from prefect.client.orchestration import PrefectClient

        client = PrefectClient(self.api_url, auth_string=prefect_auth_string(self.settings))
        await client.__aenter__()
        self._client = client
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.__aexit__(exc_type, exc, tb)
        if self._owns_db:
            self._db.close()

    def notify(self) -> None:
        """A job was just committed: look now instead of at the next poll (event-loop thread)."""
        self._wake.set()

    async def backlog(self) -> int:
        """How many jobs wait for their flow run."""
        return await self._db.run(_backlog, self._db.url)

    def status(self) -> dict[str, object]:
        """For ``/healthz``: alive, counters, the last error, when the next retry is."""
        s = self._status
        retry_in = None if s.retry_at is None else max(0.0, round(s.retry_at - time.monotonic(), 1))
        return {
            "alive": s.running,
            "prefectApiUrl": self.api_url,
            "dispatched": s.dispatched,
            "consecutiveFailures": s.consecutive_failures,
            "lastError": s.last_error,
            "lastDispatchAt": s.last_dispatch_at.isoformat() if s.last_dispatch_at else None,
            "retryInS": retry_in,
        }

    async def _trigger(self, ref: JobRef) -> str:
        if self._client is None:
            raise RuntimeError("use the dispatcher as `async with Dispatcher(...)`")
        return await asyncio.wait_for(
            trigger_job(ref, client=self._client, deployment=self.deployment),
            timeout=_CALL_TIMEOUT_S,
        )

    async def run_once(self) -> DispatchResult | None:
        """Create the flow run of the oldest waiting job; None when no job is due."""
        self._wake.clear()
        claim = await self._db.run(_claim, self._db.url)
        if claim is None:
            return None
        session, ref, attempts = claim
        started = time.perf_counter()
        try:
            flow_run_id = await self._trigger(ref)
        except Exception as exc:  # noqa: BLE001  (every failure keeps the job waiting)
            return await self._failed(session, ref, attempts, exc, started)
        except BaseException:
            session.close()  # cancelled: roll back, the job stays waiting
            raise
        await self._db.run(_record_success, session, ref.id, flow_run_id)
        ms = round((time.perf_counter() - started) * 1000, 1)
        self._succeeded()
        log.info(
            "dispatch.created",
            job_id=str(ref.id),
            flow_run_id=flow_run_id,
            attempt=attempts + 1,
            ms=ms,
        )
        return DispatchResult(job_id=ref.id, flow_run_id=flow_run_id, ms=ms)

    def _succeeded(self) -> None:
        s = self._status
        if s.consecutive_failures:
            log.info("dispatch.recovered", after_failures=s.consecutive_failures)
        s.dispatched += 1
        s.consecutive_failures = 0
        s.last_error = None
        s.retry_at = None
        s.last_dispatch_at = utcnow()

    async def _failed(
        self, session: Session, ref: JobRef, attempts: int, exc: Exception, started: float
    ) -> DispatchResult:
        transient = is_transient(exc)
        error = redact_urls(f"{type(exc).__name__}: {exc}")[:500]
        retry_at = None
        if not transient:
            delay = backoff_delay(attempts + 1, cap=_JOB_BACKOFF_MAX_S, rng=self._rng)
            retry_at = utcnow() + timedelta(seconds=delay)
        await self._db.run(_record_failure, session, ref.id, error, retry_at)
        self._status.last_error = error
        log.warning(
            "dispatch.failed",
            job_id=str(ref.id),
            attempt=attempts + 1,
            transient=transient,
            error=error,
        )
        ms = round((time.perf_counter() - started) * 1000, 1)
        return DispatchResult(job_id=ref.id, error=error, transient=transient, ms=ms)

    async def _pause(self, seconds: float, stop: asyncio.Event, *, wake: bool) -> None:
        """Sleep ``seconds``, or less when stopping (or, if ``wake``, when a job arrives)."""
        waiters = [asyncio.ensure_future(stop.wait())]
        if wake:
            waiters.append(asyncio.ensure_future(self._wake.wait()))
        try:
            await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()

    async def run(self, stop: asyncio.Event) -> None:
        """Dispatch until ``stop`` is set; never raises for Prefect or database trouble."""
        from prefect.settings import PREFECT_CLIENT_MAX_RETRIES, temporary_settings

        # Our own backoff decides when to try again; the client's (2, 4, … 32 s) would only
        # hold the queue longer. The override lives in this task's context alone, and is set
        # once: building Prefect settings costs a few hundred ms of CPU on the event loop.
        with temporary_settings(updates={PREFECT_CLIENT_MAX_RETRIES: self._client_retries}):
            if self._client is None:
                async with self:
                    await self._loop(stop)
            else:
                await self._loop(stop)

    async def _loop(self, stop: asyncio.Event) -> None:
        status = self._status
        status.running = True
        log.info("dispatcher.started", prefect_api=self.api_url, backlog=await self._safe_backlog())
        try:
            while not stop.is_set():
                try:
                    result = await self.run_once()
                except Exception as exc:  # noqa: BLE001  (database down: retry, never die)
                    result = None
                    status.last_error = redact_urls(f"database: {type(exc).__name__}: {exc}")[:500]
                    status.consecutive_failures += 1
                    transient = is_transient_db_error(exc)  # False: a bug, not an outage
                    log.warning("dispatch.db_error", transient=transient, error=status.last_error)
                    await self._back_off(stop)
                    continue
                if (status.last_error or "").startswith("database: "):  # it answers again
                    log.info("dispatch.db_recovered", after_failures=status.consecutive_failures)
                    status.consecutive_failures, status.last_error = 0, None
                if result is None:
                    await self._pause(self.settings.dispatch_poll_s, stop, wake=True)
                elif result.transient:
                    status.consecutive_failures += 1
                    await self._back_off(stop)
        finally:
            status.running = False
            log.info("dispatcher.stopped", dispatched=status.dispatched)

    async def _back_off(self, stop: asyncio.Event) -> None:
        status = self._status
        delay = backoff_delay(
            status.consecutive_failures, cap=self.settings.dispatch_backoff_max_s, rng=self._rng
        )
        status.retry_at = time.monotonic() + delay
        await self._pause(delay, stop, wake=False)
        status.retry_at = None

    async def _safe_backlog(self) -> int | None:
        try:
            return await self.backlog()
        except Exception:  # noqa: BLE001  (only for the start-up log line)
            return None


async def run_dispatcher(
    settings: Settings, stop_event: asyncio.Event, *, api_url: str | None = None
) -> None:
    """Run a dispatcher on its own (no webhook) until ``stop_event`` is set."""
    upgrade_schema(settings.database_url)
    async with Dispatcher(settings, api_url=api_url) as dispatcher:
        await dispatcher.run(stop_event)

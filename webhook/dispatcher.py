"""The outbox dispatcher: creates the flow runs of the jobs the webhook accepted, one at a time.

The job row is the outbox. The webhook commits a job with ``dispatch_pending`` set and answers
202; this loop picks waiting jobs oldest first, calls ``flows.trigger.trigger_job`` (one
reused Prefect client, ``timeout=0``, idempotency key = the job id) and records the flow run id.

A job found alone gets its own ``process-image`` run at once. When several wait (a burst), the
loop gives a batch of them to one ``process-batch`` run (``flows/batch.py``), which runs each as
its own subflow and so pays a flow-run process start once per batch instead of once per photo.
A burst is shared out in whole rounds of the flow runs the work pool runs at once
(``PACKSHOT_DISPATCH_SPREAD``), at most ``PACKSHOT_DISPATCH_BATCH_MAX`` photos per run
(``Dispatcher.batch_size``).
Nothing is kept in memory that a restart could lose:

- Prefect unreachable, 5xx, or the deployment missing: the job stays waiting (attempt count and
  last error kept) and the loop backs off (exponential, capped, jittered) before trying again.
  Other failures concern one job: it is retried later, and the jobs behind it go on.
- A crash after Prefect created the run but before it was recorded: the next attempt sends the
  same permanent idempotency key and Prefect answers with the run it already has (a batch's key
  is its oldest job's; the jobs the found run carries are recorded). Should the backlog
  have changed so that the job now goes alone instead of in a batch (or the reverse), it is
  processed twice; every step skips stored outputs, so that costs time, not correctness.
- On PostgreSQL a claimed job stays locked (``FOR UPDATE SKIP LOCKED``) while its run is being
  created, so several webhook replicas can each run a dispatcher. On SQLite run one dispatcher per
  database (a second one would only repeat calls, which the idempotency key makes harmless).

Serial creation is deliberate: concurrent run creation on Prefect's SQLite fails under bursts
(docs/prefect.md, "Starting runs from the webhook"). Run it inside the webhook (the default)
or alone with ``run_dispatcher``.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import TracebackType
from typing import TYPE_CHECKING

from sqlmodel import Session

from core import jobs
from core.backoff import backoff_s
from core.db import get_engine, is_transient_db_error, upgrade_schema
from core.heap import freeze_startup_heap
from core.settings import Settings
from core.tables import utcnow
from core.urls import redact_urls
from flows.trigger import (
    PROCESS_BATCH_DEPLOYMENT,
    PROCESS_IMAGE_DEPLOYMENT,
    JobRef,
    trigger_batch,
    trigger_job,
)
from webhook.db import DbRunner, read
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
# Prefect's 503 ("busy"): tried again this many times, after 0.1 s, 0.2 s, … (at most 0.8 s).
_BUSY_RETRIES = 4
_BUSY_PAUSE_S = 0.1
_BUSY_PAUSE_MAX_S = 0.8
# After Prefect said the batch deployment does not exist, send one photo per run this long.
_BATCH_OFF_S = 300.0


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


def _is_busy(exc: BaseException) -> bool:
    """Prefect answered 503: a momentary refusal (its database was busy), worth a quick retry."""
    import httpx

    return isinstance(exc, httpx.HTTPStatusError) and exc.response.status_code == 503


def _is_missing_deployment(exc: BaseException) -> bool:
    from prefect.exceptions import ObjectNotFound

    return isinstance(exc, ObjectNotFound)


@dataclass(frozen=True)
class DispatchResult:
    """What one attempt did: one flow run for ``job_ids`` (one job, or a batch)."""

    job_ids: tuple[uuid.UUID, ...]
    flow_run_id: str | None = None
    error: str | None = None
    transient: bool = False
    ms: float = 0.0

    @property
    def job_id(self) -> uuid.UUID:
        """The oldest job of the attempt (the only one unless it was a batch)."""
        return self.job_ids[0]

    @property
    def ok(self) -> bool:
        """The flow run exists and is recorded on its jobs."""
        return self.flow_run_id is not None


@dataclass
class _Status:
    running: bool = False
    dispatched: int = 0
    consecutive_failures: int = 0
    last_error: str | None = None
    last_dispatch_at: datetime | None = None
    retry_at: float | None = None


@dataclass
class _Claim:
    """Jobs claimed for one flow run; on PostgreSQL their rows stay locked until recorded."""

    session: Session
    refs: list[JobRef]
    attempts: list[int]


def _claim(url: str, size_for: Callable[[int], int]) -> _Claim | None:
    """Claim the next jobs to dispatch; ``size_for(waiting)`` says how many to take."""
    session = Session(get_engine(url), expire_on_commit=False)
    try:
        waiting = jobs.count_due_dispatch(session)
        limit = size_for(waiting)  # also when none wait: that ends the burst
        found = jobs.claim_dispatch(session, limit=limit) if waiting else []
    except BaseException:
        session.close()
        raise
    if not found:
        session.close()
        return None
    refs = [JobRef.model_validate(job) for job in found]
    return _Claim(session, refs, [job.dispatch_attempts for job in found])


def _record_success(
    session: Session, job_ids: list[uuid.UUID], flow_run_id: str
) -> list[uuid.UUID]:
    """Record the run on the jobs it carries that still wait; returns them. Claimed jobs it
    does not carry stay waiting (their locks end here)."""
    with session:
        recorded = jobs.mark_waiting_dispatched(session, job_ids=job_ids, flow_run_id=flow_run_id)
        session.commit()
    return recorded


def _record_failure(
    session: Session, job_ids: list[uuid.UUID], error: str, retry_at: datetime | None
) -> None:
    with session:
        for job_id in job_ids:
            jobs.mark_dispatch_failed(session, job_id=job_id, error=error, retry_at=retry_at)
        session.commit()


def _release(session: Session) -> None:
    with session:
        session.rollback()


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
        batch_deployment: str = PROCESS_BATCH_DEPLOYMENT,
        client_retries: int = 0,
        rng: random.Random | None = None,
    ) -> None:
        self.settings = settings
        self.deployment = deployment
        self.batch_deployment = batch_deployment
        self.spread = settings.dispatch_spread or settings.workers * settings.worker_limit
        self._burst_taken = 0  # jobs the current burst's runs have carried so far
        self._batch_off_until = 0.0
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
        return await self._db.run(read, self._db.url, jobs.count_pending_dispatch)

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

    def batch_size(self, waiting: int) -> int:
        """How many of ``waiting`` jobs the next flow run carries.

        One alone goes alone, at once. A burst is shared out in rounds of ``spread`` runs (the
        runs the work pool runs at once): as few runs as ``dispatch_batch_max`` allows, rounded
        up to whole rounds, all about the same size. So 40 photos on 2 slots become 8 runs of 5
        (four full rounds), not 6 × 6 + 4 (a last round with a slot idle), and 11 become 6 + 5.
        The plan counts the jobs already taken from the burst, so it holds while the backlog
        drains and grows with jobs that join it.
        """
        if waiting <= 1 or time.monotonic() < self._batch_off_until:
            self._burst_taken = 0
            return 1
        seen = self._burst_taken + waiting
        runs = math.ceil(seen / self.settings.dispatch_batch_max)
        runs = math.ceil(runs / self.spread) * self.spread
        size = min(math.ceil(seen / runs), waiting)
        self._burst_taken += size
        return size

    async def _trigger(self, refs: list[JobRef]) -> tuple[str, list[uuid.UUID]]:
        """Create the run for ``refs``: the job's own, or a batch; returns it and its jobs.

        A 503 is Prefect saying "busy, try again" (on SQLite: a write that collided with
        another one); it is tried again after a pause of a tenth of a second or so, up to
        ``_BUSY_RETRIES`` times, before it counts as a failure. Prefect's client would wait
        2 s before its own retry, holding a burst's first run that long.
        """
        for attempt in range(1, _BUSY_RETRIES + 1):
            try:
                return await self._trigger_once(refs)
            except Exception as exc:
                if not _is_busy(exc):
                    raise
                await asyncio.sleep(
                    backoff_s(attempt, first=_BUSY_PAUSE_S, cap=_BUSY_PAUSE_MAX_S, rng=self._rng)
                )
        return await self._trigger_once(refs)

    async def _trigger_once(self, refs: list[JobRef]) -> tuple[str, list[uuid.UUID]]:
        if self._client is None:
            raise RuntimeError("use the dispatcher as `async with Dispatcher(...)`")
        if len(refs) == 1:
            call = trigger_job(refs[0], client=self._client, deployment=self.deployment)
            return await asyncio.wait_for(call, timeout=_CALL_TIMEOUT_S), [refs[0].id]
        batch = trigger_batch(refs, client=self._client, deployment=self.batch_deployment)
        return await asyncio.wait_for(batch, timeout=_CALL_TIMEOUT_S)

    async def run_once(self) -> DispatchResult | None:
        """Create the flow run of the oldest waiting job (or batch); None when none is due."""
        self._wake.clear()
        claim = await self._db.run(_claim, self._db.url, self.batch_size)
        if claim is None:
            return None
        claimed = [ref.id for ref in claim.refs]
        started = time.perf_counter()
        try:
            flow_run_id, carried = await self._trigger(claim.refs)
        except Exception as exc:  # noqa: BLE001  (every failure keeps the jobs waiting)
            if len(claim.refs) > 1 and _is_missing_deployment(exc):
                return await self._without_batches(claim)
            return await self._failed(claim, exc, started)
        except BaseException:
            claim.session.close()  # cancelled: roll back, the jobs stay waiting
            raise
        recorded = await self._db.run(_record_success, claim.session, carried, flow_run_id)
        ms = round((time.perf_counter() - started) * 1000, 1)
        self._succeeded(len(recorded))
        log.info(
            "dispatch.created",
            job_id=str(claimed[0]),
            jobs=len(recorded),
            flow_run_id=flow_run_id,
            attempt=claim.attempts[0] + 1,
            ms=ms,
        )
        return DispatchResult(job_ids=tuple(recorded), flow_run_id=flow_run_id, ms=ms)

    async def _without_batches(self, claim: _Claim) -> DispatchResult | None:
        """The batch deployment is missing (a server deployed before it existed): for a while,
        every job gets its own run, and these jobs are claimed again at once."""
        await self._db.run(_release, claim.session)
        self._batch_off_until = time.monotonic() + _BATCH_OFF_S
        log.warning(
            "dispatch.batch_missing",
            deployment=self.batch_deployment,
            hint="deploy it (packshot up, or prefect deploy --all); one photo per run meanwhile",
        )
        return await self.run_once()

    def _succeeded(self, count: int) -> None:
        s = self._status
        if s.consecutive_failures:
            log.info("dispatch.recovered", after_failures=s.consecutive_failures)
        s.dispatched += count
        s.consecutive_failures = 0
        s.last_error = None
        s.retry_at = None
        s.last_dispatch_at = utcnow()

    async def _failed(self, claim: _Claim, exc: Exception, started: float) -> DispatchResult:
        transient = is_transient(exc)
        error = redact_urls(f"{type(exc).__name__}: {exc}")[:500]
        retry_at = None
        if not transient:
            delay = backoff_delay(claim.attempts[0] + 1, cap=_JOB_BACKOFF_MAX_S, rng=self._rng)
            retry_at = utcnow() + timedelta(seconds=delay)
        job_ids = [ref.id for ref in claim.refs]
        await self._db.run(_record_failure, claim.session, job_ids, error, retry_at)
        self._status.last_error = error
        log.warning(
            "dispatch.failed",
            job_id=str(job_ids[0]),
            jobs=len(job_ids),
            attempt=claim.attempts[0] + 1,
            transient=transient,
            error=error,
        )
        ms = round((time.perf_counter() - started) * 1000, 1)
        return DispatchResult(job_ids=tuple(job_ids), error=error, transient=transient, ms=ms)

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

        # Our own retries decide when to try again (a 503 at once, other failures with the
        # backoff); the client's (2, 4, … 32 s) would only hold the queue longer. The override
        # lives in this task's context alone, and is set once: building Prefect settings costs
        # a few hundred ms of CPU on the event loop.
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
                    if self.settings.dispatch_linger_s and await self._jobs_arrived():
                        # A job arrived at an idle dispatcher: a burst's next deliveries are
                        # a few ms behind it; catch them, so the burst is shared out evenly.
                        await self._pause(self.settings.dispatch_linger_s, stop, wake=False)
                elif result.transient:
                    status.consecutive_failures += 1
                    await self._back_off(stop)
        finally:
            status.running = False
            log.info("dispatcher.stopped", dispatched=status.dispatched)

    async def _jobs_arrived(self) -> bool:
        """After an idle pause: woken by the webhook in this process, or a poll finds jobs."""
        if self._wake.is_set():
            return True
        return await self._db.run(read, self._db.url, jobs.count_due_dispatch) > 0

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
        freeze_startup_heap()  # Prefect's client is imported: a full collection walks none of it
        await dispatcher.run(stop_event)

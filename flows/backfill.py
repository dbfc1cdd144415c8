"""Backfills: many images, processed in chunks, each chunk in-process in one flow run.

A flow run costs about five seconds of process start under a worker, so one run per image
would waste most of a backfill. The ``backfill`` flow plans: it splits the rows into chunks
and, when there is more than one, starts child runs of the same deployment for some chunks
(spread over the work pool by Prefect) while it processes others itself, at most
``max_parallel`` chunks at a time. A run given a ``chunk`` processes its rows one after the
other in its own process.

    prefect deployment run 'backfill/default' --params '{"theme": "white", "all_images": true}'
    prefect deployment run 'backfill/default' \\
        --params '{"rows": [{"sku": "A1", "image_url": "https://…", "sha256": "…"}]}'
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from datetime import UTC, datetime

from prefect import flow, get_run_logger
from prefect.client.schemas.objects import State
from prefect.deployments import run_deployment
from prefect.runtime import deployment
from prefect.task_runners import ThreadPoolTaskRunner
from pydantic import BaseModel, field_validator
from sqlmodel import col, select

from core.db import session_scope, upgrade_schema
from core.schemas import ImageJobSpec
from core.sealed import seal_source_url, source_of
from core.settings import get_settings
from core.tables import Job, as_utc
from flows.process_image import process_one
from flows.trigger import BACKFILL_DEPLOYMENT

__all__ = ["BackfillRow", "backfill", "known_images", "outcomes_for"]


class BackfillRow(BaseModel):
    """One image of a backfill (a CSV row: sku,image_url[,sha256][,theme]).

    A row taken from the job table (``all_images``) names the job it came from in ``source_job``
    and carries only the shown form of its URL: chunks travel as flow-run parameters, which
    must not hold credentials. The whole URL is read from that job when the row runs.
    """

    sku: str
    image_url: str
    sha256: str | None = None
    theme: str | None = None
    source_job: uuid.UUID | None = None

    @field_validator("sku", mode="before")
    @classmethod
    def _as_text(cls, value: object) -> object:
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


def known_images() -> list[BackfillRow]:
    """Every distinct source image the job table knows (any theme), oldest first."""
    url = get_settings().database_url
    upgrade_schema(url)
    with session_scope(url) as session:
        jobs = session.exec(select(Job).order_by(Job.created_at)).all()  # type: ignore[arg-type]
    seen: dict[tuple[str, str], BackfillRow] = {}
    for job in jobs:
        seen.setdefault(
            (job.sku, job.sha256),
            BackfillRow(
                sku=job.sku, image_url=job.source_url, sha256=job.sha256, source_job=job.id
            ),
        )
    return list(seen.values())


def _process_chunk(rows: list[BackfillRow], theme: str, rerender: bool) -> Counter[str]:
    logger = get_run_logger()
    outcomes: Counter[str] = Counter()
    for row in rows:
        try:
            spec = ImageJobSpec(
                sku=row.sku, image_url=_source(row), sha256=row.sha256, theme=row.theme or theme
            )
            result = process_one(spec, rerender=rerender)
        except Exception as exc:  # noqa: BLE001  (one bad row must not stop the backfill)
            logger.warning("row %s failed before its job existed: %s", row.sku, exc)
            outcomes["FAILED"] += 1
            continue
        outcomes[result.status] += 1
    return outcomes


def _source(row: BackfillRow) -> str:
    """The URL to fetch ``row`` from: its own, or the whole URL stored on its source job."""
    if row.source_job is None:
        return row.image_url
    url = get_settings().database_url
    with session_scope(url) as session:
        job = session.get(Job, row.source_job)
        return source_of(job) if job is not None else row.image_url


def outcomes_for(rows: list[BackfillRow], theme: str, since: datetime) -> Counter[str]:
    """Status of each row's job touched since ``since`` (``PENDING`` when not yet finished)."""
    url = get_settings().database_url
    upgrade_schema(url)
    outcomes: Counter[str] = Counter()
    with session_scope(url) as session:
        for row in rows:
            query = select(Job).where(Job.sku == row.sku, Job.theme == (row.theme or theme))
            if row.sha256:
                query = query.where(Job.sha256 == row.sha256.lower())
            else:
                query = query.where(Job.source_url == seal_source_url(row.image_url).shown)
            job = session.exec(query.order_by(col(Job.updated_at).desc())).first()
            done = (
                job is not None and job.finished_at is not None and as_utc(job.finished_at) >= since
            )
            outcomes[job.status if done and job else "PENDING"] += 1
    return outcomes


def _run_chunks(
    chunks: list[list[BackfillRow]], theme: str, rerender: bool, max_parallel: int
) -> None:
    """Spread the chunks: child runs on the work pool, and this run takes its own share.

    This run already holds a worker slot, so it works too rather than only waiting: with
    ``max_parallel`` 2 on a worker of limit 2, one child runs beside it at any time.
    """
    pending = list(chunks)
    running: list[uuid.UUID] = []
    while pending:
        running = _still_running(running)
        while pending and len(running) < max_parallel - 1:
            rows = pending.pop()
            params = {"chunk": [r.model_dump() for r in rows], "theme": theme, "rerender": rerender}
            run = run_deployment(BACKFILL_DEPLOYMENT, parameters=params, timeout=0, as_subflow=True)
            running.append(run.id)  # type: ignore[union-attr]
        if pending:
            _process_chunk(pending.pop(0), theme, rerender)
    while running:
        time.sleep(2)
        running = _still_running(running)


def _still_running(runs: list[uuid.UUID]) -> list[uuid.UUID]:
    from prefect import get_client

    with get_client(sync_client=True) as client:
        return [rid for rid in runs if not _is_final(client.read_flow_run(rid).state)]


def _is_final(state: State | None) -> bool:
    return state is not None and state.is_final()


@flow(
    name="backfill",
    flow_run_name="backfill-{theme}",
    task_runner=ThreadPoolTaskRunner(max_workers=4),  # type: ignore[arg-type]
)
def backfill(
    rows: list[BackfillRow] | None = None,
    theme: str = "default",
    all_images: bool = False,
    rerender: bool = False,
    chunk: list[BackfillRow] | None = None,
    chunk_size: int = 5,
    max_parallel: int = 2,
) -> dict[str, int]:
    """Process many images: plan chunks, or process one chunk in this process.

    Args:
        rows: images to process (sku, image_url, optional sha256 and theme).
        theme: theme for rows without one.
        all_images: re-render every source image the job table knows, in ``theme``.
        rerender: redo backgrounds, composites and derivatives (cutouts are reused).
        chunk: internal: the rows this run processes itself.
        chunk_size: images per flow run.
        max_parallel: chunk runs in flight at once.
    """
    if chunk is not None:
        outcomes = _process_chunk(chunk, theme, rerender)
        return {"images": len(chunk), **outcomes}
    started = datetime.now(UTC)
    planned = list(rows or []) + (known_images() if all_images else [])
    rerender = rerender or all_images
    size = max(1, min(chunk_size, 200))
    chunks = [planned[i : i + size] for i in range(0, len(planned), size)]
    if len(chunks) <= 1 or deployment.get_id() is None:
        # One chunk (or no deployment to fan out to): processing here is cheapest.
        _process_chunk(planned, theme, rerender)
    else:
        _run_chunks(chunks, theme, rerender, max(1, max_parallel))
    outcomes = outcomes_for(planned, theme, started)
    # Every chunk has finished: a row still without a finished job failed before its job
    # existed (its source could not be fetched, so its sha256 was never known).
    outcomes["FAILED"] += outcomes.pop("PENDING", 0)
    if not outcomes["FAILED"]:
        del outcomes["FAILED"]
    get_run_logger().info("backfill of %d images: %s", len(planned), dict(outcomes))
    return {"images": len(planned), **outcomes}

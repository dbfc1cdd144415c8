"""``packshot backfill``: validate the rows, start the ``backfill/default`` run, show progress."""

from __future__ import annotations

import csv
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from core.errors import ConfigurationError, InputError
from core.schemas import ImageJobSpec
from core.settings import Settings
from core.themes import resolve_theme
from deployments.prefect_env import auth_string, locate_api_url, prefect_api
from flows.backfill import BackfillRow, known_images, outcomes_for
from flows.trigger import BACKFILL_DEPLOYMENT

__all__ = ["read_csv", "run_backfill"]

_FIELDS = ("sku", "image_url", "sha256", "theme")


def read_csv(path: Path, theme: str, themes_file: Path | None) -> list[BackfillRow]:
    """Rows of ``sku,image_url[,sha256][,theme]`` (a header line is optional).

    Raises:
        InputError: naming the line and the field of the first bad row.
    """
    rows: list[BackfillRow] = []
    with path.open(newline="", encoding="utf-8") as handle:
        for number, record in enumerate(csv.reader(handle), start=1):
            cells = [cell.strip() for cell in record]
            if not any(cells) or (number == 1 and cells[0].lower() == "sku"):
                continue
            values = dict(zip(_FIELDS, cells, strict=False))
            try:
                spec = ImageJobSpec(
                    sku=values.get("sku", ""),
                    image_url=values.get("image_url", ""),
                    sha256=values.get("sha256") or None,
                    theme=values.get("theme") or theme,
                )
                resolve_theme(spec.theme, themes_file)
            except ValidationError as exc:
                field = ".".join(str(p) for p in exc.errors()[0]["loc"])
                raise InputError(
                    f"{path.name} line {number}: {field}: {exc.errors()[0]['msg']}"
                ) from exc
            except InputError as exc:
                raise InputError(f"{path.name} line {number}: {exc}") from exc
            if not spec.image_url.startswith(("http://", "https://")):
                raise InputError(f"{path.name} line {number}: image_url must be http(s)")
            rows.append(
                BackfillRow(
                    sku=spec.sku, image_url=spec.image_url, sha256=spec.sha256, theme=spec.theme
                )
            )
    return rows


def _confirm(
    console: Console, settings: Settings, rows: list[BackfillRow], assume_yes: bool
) -> bool:
    """Print the estimated cost; ask before spending more than the confirmation threshold."""
    from core.pricing import estimate_job_cost, needs_confirmation

    cost = sum(estimate_job_cost(settings, row.theme or "default") for row in rows)
    console.print(f"{len(rows)} images, estimated cost ${cost:.4f}")
    if assume_yes or not needs_confirmation(settings, cost):
        return True
    import typer

    return typer.confirm(f"Spend about ${cost:.2f}?", default=False)


def _trigger(rows: list[BackfillRow], theme: str, rerender: bool, chunk_size: int) -> str:
    from prefect.deployments import run_deployment

    run = run_deployment(
        BACKFILL_DEPLOYMENT,
        parameters={
            "rows": [row.model_dump() for row in rows],
            "theme": theme,
            "rerender": rerender,
            "chunk_size": chunk_size,
        },
        timeout=0,
    )
    return str(run.id)  # type: ignore[union-attr]


def _run_finished(run_id: str) -> bool:
    from prefect import get_client

    with get_client(sync_client=True) as client:
        state = client.read_flow_run(uuid.UUID(run_id)).state
    return state is not None and state.is_final()


def _follow(
    console: Console, rows: list[BackfillRow], theme: str, since: datetime, run_id: str
) -> dict[str, int]:
    columns = (TextColumn("backfill"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console) as progress:
        bar = progress.add_task("images", total=len(rows))
        while True:
            finished = _run_finished(run_id)  # read first: the rows it settled are counted next
            outcomes = outcomes_for(rows, theme, since)
            pending = outcomes.pop("PENDING", 0)
            progress.update(bar, completed=len(rows) - pending)
            if pending == 0 or finished:
                if pending:
                    # The backfill ended: those rows failed before a job existed (bad URL).
                    outcomes["FAILED"] += pending
                return dict(outcomes)
            time.sleep(2)


def run_backfill(
    settings: Settings,
    *,
    csv_file: Path | None,
    theme: str,
    all_images: bool,
    chunk_size: int,
    assume_yes: bool,
    console: Console,
) -> int:
    """Run a backfill through the deployment; returns the exit code (0 all DONE, 1, 2)."""
    try:
        resolve_theme(theme, settings.themes_file)
        rows = read_csv(csv_file, theme, settings.themes_file) if csv_file else known_images()
    except (InputError, OSError) as exc:
        console.print(f"[red]error:[/red] {escape(str(exc))}")
        return 2
    if all_images:
        rows = [row.model_copy(update={"theme": theme}) for row in rows]
    if not rows:
        console.print("nothing to do: no images")
        return 0
    if not _confirm(console, settings, rows, assume_yes):
        console.print("cancelled")
        return 1
    try:
        api = locate_api_url(settings)
    except ConfigurationError as exc:
        console.print(f"[red]error:[/red] {escape(str(exc))}")
        return 2
    if api is None:
        console.print(
            "[red]error:[/red] no Prefect server: start `packshot up` or set PREFECT_API_URL"
        )
        return 2
    since = datetime.now(UTC)
    with prefect_api(api, auth_string(settings)):
        run_id = _trigger(rows, theme, all_images, chunk_size)
        console.print(f"flow run {run_id} ({BACKFILL_DEPLOYMENT}) started")
        outcomes = _follow(console, rows, theme, since, run_id)
    console.print("outcome: " + ", ".join(f"{k} {v}" for k, v in sorted(outcomes.items())))
    return 0 if outcomes.get("DONE", 0) == len(rows) else 1

"""``packshot demo``: the embedded stack, a stand-in for the 3JMS CDN, and signed webhooks.

The bundled sample photos are served from a loopback HTTP server (as 3JMS's CDN would serve
them), one signed webhook is posted per photo plus one duplicate, progress is shown live, and
a summary says where to look.
"""

from __future__ import annotations

import csv
import hashlib
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
from rich import box
from rich.console import Console
from rich.live import Live
from rich.table import Table

from core.signing import SIGNATURE_HEADER, sign

__all__ = ["SAMPLES", "Delivery", "post_delivery", "samples", "serve_folder"]

SAMPLES = Path(__file__).with_name("samples")
# Statuses a job rests in: ended, or held for a person (the review queue).
_TERMINAL = {"DONE", "FAILED", "NEEDS_REVIEW", "REJECTED"}


@dataclass
class Delivery:
    """One webhook the demo sends, and what became of it."""

    sku: str
    file: Path
    image_url: str = ""
    sha256: str = ""
    job_id: str = ""
    answer: int = 0
    view: dict[str, object] = field(default_factory=dict)


def samples(folder: Path = SAMPLES) -> list[Delivery]:
    """The bundled photos with their demo SKUs (MANIFEST.csv)."""
    with (folder / "MANIFEST.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    return [Delivery(sku=row["sku"], file=folder / row["file"]) for row in rows]


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


def serve_folder(folder: Path) -> tuple[ThreadingHTTPServer, str]:
    """Serve ``folder`` read-only on a free loopback port (the 3JMS CDN stand-in)."""
    handler = partial(_QuietHandler, directory=str(folder))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, name="demo-cdn", daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def post_delivery(client: httpx.Client, webhook: str, secret: str, delivery: Delivery) -> None:
    """POST the signed event for ``delivery`` and remember the job id."""
    body = json.dumps(
        {
            "sku": delivery.sku,
            "imageUrl": delivery.image_url,
            "sha256": delivery.sha256,
            "theme": "default",
        }
    ).encode()
    response = client.post(
        f"{webhook}/api/webhooks/3jms/images",
        content=body,
        headers={"content-type": "application/json", SIGNATURE_HEADER: sign(secret, body)},
    )
    delivery.answer = response.status_code
    if response.status_code in (200, 202):
        delivery.job_id = str(response.json()["jobId"])


def prepare(deliveries: list[Delivery], cdn: str) -> None:
    """Fill in each delivery's URL and sha256."""
    for delivery in deliveries:
        delivery.image_url = f"{cdn}/{delivery.file.name}"
        delivery.sha256 = hashlib.sha256(delivery.file.read_bytes()).hexdigest()


def _progress_table(deliveries: list[Delivery], started: float) -> Table:
    table = Table(title=f"Packshot demo · {time.monotonic() - started:.0f} s")
    for column in ("sku", "answer", "status", "progress"):
        table.add_column(column)
    for d in deliveries:
        status = str(d.view.get("status", "NEW"))
        step = _step_number(status)
        bar = "█" * step + "░" * (7 - step)
        label = f"{bar} step {step} of 7" if step else _RESTING.get(status, "failed")
        table.add_row(d.sku, str(d.answer), status, label)
    return table


_RESTING = {"NEEDS_REVIEW": "held for review", "REJECTED": "rejected"}


def _step_number(status: str) -> int:
    order = [
        "NEW",
        "BG_REMOVED",
        "BACKGROUND_READY",
        "COMPOSITED",
        "DERIVATIVES",
        "SHOPIFY_PUSH",
        "DONE",
    ]
    return order.index(status) + 1 if status in order else 0


def watch(
    client: httpx.Client,
    webhook: str,
    deliveries: list[Delivery],
    console: Console,
    timeout: float = 900,
) -> None:
    """Poll the jobs until every one is DONE, FAILED or held for review, showing progress."""
    started = time.monotonic()
    with Live(_progress_table(deliveries, started), console=console, refresh_per_second=2) as live:
        while time.monotonic() - started < timeout:
            for d in deliveries:
                if d.job_id and d.view.get("status") not in _TERMINAL:
                    response = client.get(f"{webhook}/api/jobs/{d.job_id}")
                    if response.status_code == 200:
                        d.view = response.json()
            live.update(_progress_table(deliveries, started))
            if all(d.view.get("status") in _TERMINAL for d in deliveries if d.job_id):
                return
            time.sleep(1)


def new_secret() -> str:
    """A throwaway webhook secret for the demo's own 3JMS stand-in."""
    return secrets.token_hex(24)


# Step name → short column heading, so the summary fits an 80-column terminal.
_STEP_COLUMNS = {
    "download": "get",
    "remove_background": "cut",
    "generate_backgrounds": "bgs",
    "composite": "comp",
    "derivatives": "der",
    "manifest": "man",
    "publish": "pub",
}


def summary_table(deliveries: list[Delivery]) -> Table:
    """Per job: status, seconds of each step (mapped steps summed), total, cost and files."""
    table = Table(
        title="Summary: seconds per step (get, cut out, backgrounds, composites, derivatives, "
        "manifest, publish)",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        collapse_padding=True,
    )
    table.add_column("sku", no_wrap=True)
    table.add_column("state", no_wrap=True)
    for heading in (*_STEP_COLUMNS.values(), "total", "USD", "files"):
        table.add_column(heading, justify="right", no_wrap=True)
    for d in deliveries:
        per_step = dict.fromkeys(_STEP_COLUMNS, 0.0)
        for step in d.view.get("steps") or []:  # type: ignore[attr-defined]
            per_step[step["step"]] = per_step.get(step["step"], 0.0) + (step.get("ms") or 0.0)
        table.add_row(
            d.sku,
            str(d.view.get("status", "?")),
            *(f"{per_step[name] / 1000:.1f}" for name in _STEP_COLUMNS),
            f"{float(str(d.view.get('ms') or 0)) / 1000:.1f}",
            f"{float(str(d.view.get('costUsd') or 0)):.2f}",
            str(len(d.view.get("assets") or [])),  # type: ignore[arg-type]
        )
    return table


def flow_runs_for_job(api_url: str, auth: str | None, job_id: str) -> int:
    """How many process-image flow runs Prefect holds for ``job_id`` (asks the Prefect API)."""
    from prefect import get_client
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName

    from deployments.prefect_env import prefect_api

    with prefect_api(api_url, auth), get_client(sync_client=True) as client:
        runs = client.read_flow_runs(
            flow_filter=FlowFilter(name=FlowFilterName(any_=["process-image"])), limit=200
        )
    return sum(1 for run in runs if str(run.parameters.get("job_id")) == job_id)


def wait_for_runs(api_url: str, auth: str | None, timeout: float = 60.0) -> None:
    """Wait, at most ``timeout`` seconds, until Prefect has no pending or running flow run.

    A job is DONE as soon as its flow wrote it; Prefect marks the run Completed a moment later.
    Stopping the stack in between would cancel runs that have done their work.
    """
    from prefect import get_client
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType

    from deployments.prefect_env import prefect_api

    active = FlowRunFilter(
        state=FlowRunFilterState(
            type=FlowRunFilterStateType(any_=[StateType.PENDING, StateType.RUNNING])
        )
    )
    deadline = time.monotonic() + timeout
    with prefect_api(api_url, auth), get_client(sync_client=True) as client:
        while client.read_flow_runs(flow_run_filter=active, limit=1):
            if time.monotonic() > deadline:
                return
            time.sleep(0.5)

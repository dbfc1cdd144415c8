"""Human-readable output of ``packshot process``: the per-step table and where the files are."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from deployments.runner import ProcessOutcome

__all__ = ["print_job"]

_STATE_STYLE = {"COMPLETED": "green", "SKIPPED": "cyan", "FAILED": "red", "RETRYING": "yellow"}


def print_job(console: Console, outcome: ProcessOutcome) -> None:
    """Print the job's steps (status, ms, cost, provider), totals and the timing split.

    The error of a failed job is not part of it: the CLI prints that as one line on stderr.
    """
    view = outcome.view
    if view is None:  # refused before a job existed: the error line on stderr says why
        console.print("[red]FAILED[/red]")
        return
    table = Table(title=f"{view.sku} · {view.theme} · {view.sha256[:12]}…")
    table.add_column("step", no_wrap=True, min_width=20)
    table.add_column("state", no_wrap=True)
    for column in ("attempts", "ms", "cost USD"):
        table.add_column(column, justify="right", no_wrap=True)
    table.add_column("provider")
    table.add_column("assets", justify="right")
    counts: dict[tuple[str, int | None], int] = {}
    kinds = {
        "download": "original",
        "remove_background": "cutout",
        "generate_backgrounds": "background",
        "composite": "composite",
        "derivatives": "derivative",
        "manifest": "manifest",
    }
    for asset in view.assets:
        counts[(asset.kind, asset.variant)] = counts.get((asset.kind, asset.variant), 0) + 1
    for step in view.steps:
        kind = kinds.get(step.step)
        n = sum(
            c
            for (k, v), c in counts.items()
            if k == kind and (not step.variant or v == step.variant)
        )
        if step.step == "remove_background":
            n += counts.get(("mask", None), 0)
        style = _STATE_STYLE.get(step.state, "")
        table.add_row(
            step.step + (f" #{step.variant}" if step.variant else ""),
            f"[{style}]{step.state}[/{style}]" if style else step.state,
            str(step.attempts),
            f"{step.ms:.0f}" if step.ms is not None else "–",
            f"{step.cost_usd:.4f}",
            escape(step.provider or ""),
            str(n) if n else "",
        )
    console.print(table)
    status_style = "green" if view.status == "DONE" else "red"
    console.print(
        f"[{status_style}]{view.status}[/{status_style}]  {len(view.assets)} files, "
        f"cost ${view.cost_usd:.4f}, job {view.job_id}"
    )
    if view.manifest_key:
        console.print(f"manifest: {view.manifest_key}", soft_wrap=True, markup=False)
    t = outcome.timings_ms
    console.print(
        f"time: {t['total']:.0f} ms in all = flow {t['flow']:.0f} ms + Prefect start-up wait "
        f"{t['prefectStartupWait']:.0f} ms ({outcome.prefect} server) + preparation "
        f"{t['warmUp']:.0f} ms"
    )

"""``packshot up``, ``packshot demo`` and ``packshot backfill``: the commands that run the stack."""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape
from rich.panel import Panel

from core.db import upgrade_schema
from core.errors import ConfigurationError
from core.logging import configure_logging
from core.settings import Settings, configure, get_settings
from deployments import demo as d
from deployments.profile import SERVICES, problems
from deployments.stack import Stack

__all__ = ["backfill", "bootstrap", "demo", "up"]

out = Console(highlight=False)
err = Console(stderr=True, highlight=False)


def _warn_unsigned(settings: Settings) -> None:
    if settings.webhook_secret is None:
        err.print(
            Panel(
                "PACKSHOT_WEBHOOK_SECRET is not set: the webhook accepts UNSIGNED deliveries.\n"
                "Anyone who can reach it can start jobs. Set a secret shared with 3JMS.",
                title="warning",
                style="bold red",
            )
        )


def _start(
    settings: Settings,
    extra_env: dict[str, str] | None = None,
    *,
    services: list[str] | None = None,
    workers: int | None = None,
) -> Stack:
    stack = Stack(settings, extra_env=extra_env, services=services or SERVICES, workers=workers)

    def _on_signal(signum: int, frame: object) -> None:
        stack.request_stop()
        # While supervising, only ask: an exception raised wherever the main thread happens
        # to be (inside a lock's acquire and its try, say) could leave a lock held that the
        # shutdown needs. Before that, interrupt the start (a health wait can take minutes).
        if not stack.supervising:
            raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    try:
        stack.start()
    except BaseException:
        _stop(stack)  # what did start (the server, a worker) must not outlive a failed start
        raise
    return stack


def _stop(stack: Stack | None) -> None:
    """Stop ``stack`` to the end: a second Ctrl-C or SIGTERM must not cut the shutdown short."""
    if stack is None:
        return
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    out.print(f"stopping (running flow runs get {stack.settings.stop_grace_s:.0f} s)…")
    stack.stop()


def _where(stack: Stack) -> None:
    s = get_settings()
    out.print(
        f"Prefect UI  {stack.ui_url}\n"
        f"webhook     {stack.webhook_url}/api/webhooks/3jms/images\n"
        f"dashboard   {stack.dashboard_url}\n"
        f"store       {s.store_url}\n"
        f"database    {s.database_url.split('@')[-1]}"
    )


def _services(value: str) -> list[str]:
    names = [name.strip() for name in value.split(",") if name.strip()]
    unknown = sorted(set(names) - set(SERVICES))
    if unknown or not names:
        raise typer.BadParameter(f"choose from {', '.join(SERVICES)} (got {value!r})")
    return names


def up(
    profile: Annotated[
        str | None,
        typer.Option(help="embedded or production; PACKSHOT_PROFILE if unset."),
    ] = None,
    services: Annotated[
        str,
        typer.Option(help="What runs on this machine: a comma list of " + ",".join(SERVICES)),
    ] = ",".join(SERVICES),
    workers: Annotated[
        int | None,
        typer.Option(min=1, max=64, help="Workers on this machine; PACKSHOT_WORKERS if unset."),
    ] = None,
) -> None:
    """The stack: Prefect server, workers, webhook and dashboard (or a subset); Ctrl-C stops all."""
    configure_logging()
    wanted = _services(services)
    if profile not in (None, "embedded", "production"):
        raise typer.BadParameter(f"embedded or production, not {profile!r}", param_hint="--profile")
    try:
        settings = configure(profile=profile) if profile else get_settings()
    except ValidationError as exc:  # a value no profile accepts, or this one refuses
        for error in exc.errors():
            where = ".".join(str(part) for part in error["loc"]) or "settings"
            err.print(f"[red]error:[/red] {escape(where)}: {escape(error['msg'])}")
        raise typer.Exit(2) from exc
    found = problems(settings, wanted)
    if found:
        for problem in found:
            err.print(f"[red]error:[/red] {escape(problem)}")
        err.print(f"profile {settings.profile}: fix the settings above (see docs/operations.md)")
        raise typer.Exit(2)
    _warn_unsigned(settings)
    stack = None
    code = 0
    try:
        # The children read their own settings: they must see the profile chosen here.
        extra: dict[str, str] = {"PACKSHOT_PROFILE": settings.profile}
        stack = _start(settings, extra, services=wanted, workers=workers)
        _where(stack)
        out.print("[green]running[/green] — Ctrl-C stops everything")
        code = stack.supervise()
    except KeyboardInterrupt:
        pass
    except ConfigurationError as exc:
        err.print(f"[red]error:[/red] {escape(str(exc))}")
        code = 2
    finally:
        _stop(stack)
    raise typer.Exit(code)


def bootstrap() -> None:
    """Bring a Prefect server up to date: work pool, deployments, limits, automation, results.

    Idempotent. ``packshot up`` does it too; run it alone when the server and the workers are
    started by other means (systemd, containers).
    """
    from deployments.bringup import bring_up
    from deployments.prefect_env import apply_prefect_defaults
    from deployments.stack import stack_env

    configure_logging()
    settings = get_settings()
    if not settings.prefect_api_url:
        err.print("[red]error:[/red] set PREFECT_API_URL to the Prefect server to bootstrap")
        raise typer.Exit(2)
    found = problems(settings, ["worker"])
    if found:
        for problem in found:
            err.print(f"[red]error:[/red] {escape(problem)}")
        raise typer.Exit(2)
    apply_prefect_defaults(settings)
    upgrade_schema(settings.database_url)
    try:
        bring_up(stack_env(settings, settings.prefect_api_url), settings)
    except ConfigurationError as exc:
        err.print(f"[red]error:[/red] {escape(str(exc))}")
        raise typer.Exit(2) from exc
    out.print(f"Prefect server {settings.prefect_api_url} is ready for workers")


def demo(
    exit_when_done: Annotated[bool, typer.Option("--exit", help="Stop when all are done.")] = False,
    sample_count: Annotated[
        int | None,
        typer.Option(
            "--samples", min=1, help="Send only the first N bundled photos (all if unset)."
        ),
    ] = None,
) -> None:
    """`up`, then signed webhooks for the bundled sample photos; shows progress and a summary."""
    import httpx

    configure_logging()
    settings = get_settings()
    secret = (
        settings.webhook_secret.get_secret_value() if settings.webhook_secret else d.new_secret()
    )
    cdn, cdn_url = d.serve_folder(d.SAMPLES)
    extra = {"PACKSHOT_ALLOW_PRIVATE_SOURCES": "true", "PACKSHOT_WEBHOOK_SECRET": secret}
    stack = None
    code = 0
    try:
        stack = _start(settings, extra)
        deliveries = d.samples()[:sample_count]
        d.prepare(deliveries, cdn_url)
        duplicate = d.Delivery(sku=deliveries[0].sku, file=deliveries[0].file)
        d.prepare([duplicate], cdn_url)
        with httpx.Client(timeout=10) as client:
            for delivery in [*deliveries, duplicate]:
                d.post_delivery(client, stack.webhook_url, secret, delivery)
            d.watch(client, stack.webhook_url, deliveries, out)
        code = _report(deliveries, duplicate, stack)
        if exit_when_done:
            d.wait_for_runs(stack.api_url, stack.auth)
        else:
            out.print("[green]still running[/green] — Ctrl-C stops everything")
            stack.supervise()
    except KeyboardInterrupt:
        pass
    except ConfigurationError as exc:
        err.print(f"[red]error:[/red] {escape(str(exc))}")
        code = 2
    finally:
        cdn.shutdown()
        _stop(stack)
    raise typer.Exit(code)


def _report(deliveries: list[d.Delivery], duplicate: d.Delivery, stack: Stack) -> int:
    out.print(d.summary_table(deliveries))
    runs = d.flow_runs_for_job(stack.api_url, stack.auth, duplicate.job_id)
    out.print(
        f"duplicate delivery for {duplicate.sku}: HTTP {duplicate.answer}, "
        f"same job {duplicate.job_id}; flow runs for it in Prefect: {runs}"
    )
    _where(stack)
    statuses = [str(x.view.get("status")) for x in deliveries]
    held = statuses.count("NEEDS_REVIEW")
    # A photo the quality gate holds is the product working: it waits for a person, unpublished.
    done = all(s in ("DONE", "NEEDS_REVIEW") for s in statuses)
    if held:
        out.print(
            f"{held} held for review (their cut-outs failed a quality check): see the dashboard's "
            "review queue or `packshot review list`"
        )
    out.print("[green]all DONE or held for review[/green]" if done else "[red]not all DONE[/red]")
    return 0 if done and runs == 1 else 1


def backfill(
    csv_file: Annotated[
        Path | None, typer.Option("--csv", help="CSV: sku,image_url[,sha256][,theme].")
    ] = None,
    theme: Annotated[
        str, typer.Option(help="Theme for rows without one / to re-render.")
    ] = "default",
    all_images: Annotated[
        bool, typer.Option("--all", help="Every known source image, re-rendered.")
    ] = False,
    chunk_size: Annotated[int, typer.Option(help="Images per flow run.")] = 5,
    yes: Annotated[bool, typer.Option("--yes", help="Skip the cost confirmation.")] = False,
) -> None:
    """Process many images through the `backfill/default` deployment, with a progress bar."""
    from deployments.backfill_cli import run_backfill

    configure_logging()
    if (csv_file is None) == (not all_images):
        err.print("[red]error:[/red] give --csv FILE or --theme T --all")
        raise typer.Exit(2)
    code = run_backfill(
        get_settings(),
        csv_file=csv_file,
        theme=theme,
        all_images=all_images,
        chunk_size=chunk_size,
        assume_yes=yes,
        console=out,
    )
    sys.exit(code)

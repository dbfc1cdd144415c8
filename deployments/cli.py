"""The ``packshot`` CLI (docs/architecture.md). Exit codes: 0 ok, 1 job failed, 2 bad input,
3 held for review."""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
import time
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape

from core.errors import ConfigurationError, InputError, PipelineError
from core.schemas import ImageJobSpec
from core.settings import Settings, configure, get_settings

app = typer.Typer(
    add_completion=False, no_args_is_help=True, help="Packshot product-image pipeline."
)
db_app = typer.Typer(no_args_is_help=True, help="Job database.")
app.add_typer(db_app, name="db")

out = Console(highlight=False)
err = Console(stderr=True, highlight=False)

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
# Errors a user fixes by changing the input, not by trying again.
_INPUT_ERRORS = {"InputError", "ValidationError", "InvalidImage", "UnreadableImage"}


def _error(text: str) -> None:
    """One error line on stderr; ``text`` is printed as it is (``[...]`` is not markup)."""
    err.print(f"[red]error:[/red] {escape(text)}", soft_wrap=True)


def _settings() -> Settings:
    try:
        return get_settings()
    except ValidationError as exc:
        err.print(f"[red]invalid settings:[/red] {escape(str(exc))}")
        raise typer.Exit(EXIT_USAGE) from exc


def _source(source: str) -> tuple[str, str | None]:
    """(image_url, sha256 of a local file) — URLs pass through, paths become absolute."""
    if source.startswith(("http://", "https://")):
        return source, None
    scheme = re.match(r"^([A-Za-z][A-Za-z0-9+.-]*)://", source)
    if scheme and scheme.group(1).lower() != "file":
        raise InputError(f"image URL must be http(s), got {scheme.group(1)!r}")
    path = Path(source.removeprefix("file://")).expanduser()
    if not path.is_file():
        raise InputError(f"no such file: {source}")
    return str(path.resolve()), hashlib.sha256(path.read_bytes()).hexdigest()


@app.command()
def process(
    source: Annotated[str, typer.Argument(help="Photo: a local path or an http(s) URL.")],
    sku: Annotated[str, typer.Option(help="Product SKU, [A-Za-z0-9._-]{1,64}.")],
    theme: Annotated[str, typer.Option(help="Theme name.")] = "default",
    sha256: Annotated[str | None, typer.Option(help="Expected SHA-256 of the bytes.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    force: Annotated[bool, typer.Option(help="Redo steps whose outputs exist.")] = False,
    verbose: Annotated[
        bool,
        typer.Option(
            "--verbose", "-v", help="Show Prefect's run logs, tracebacks of bad input included."
        ),
    ] = False,
) -> None:
    """Run one image through the whole flow now, in this process."""
    from deployments.runner import one_photo_settings

    settings = one_photo_settings()
    from deployments.prefect_env import apply_prefect_defaults

    apply_prefect_defaults(settings, log_level="INFO" if verbose else "WARNING")
    try:
        image_url, local_sha = _source(source)
        if sha256 and local_sha and sha256.lower() != local_sha:
            raise InputError(f"sha256 mismatch: expected {sha256.lower()}, got {local_sha}")
        spec = ImageJobSpec(sku=sku, image_url=image_url, sha256=sha256 or local_sha, theme=theme)
        from core.providers.registry import check_providers
        from core.themes import resolve_theme

        resolve_theme(spec.theme, settings.themes_file)
        check_providers(settings)
    except (InputError, ConfigurationError) as exc:
        _error(str(exc))
        raise typer.Exit(EXIT_USAGE) from exc
    except ValidationError as exc:
        _error(_validation_text(exc))
        raise typer.Exit(EXIT_USAGE) from exc
    from deployments.run_logs import held_run_errors
    from deployments.runner import run_process

    try:
        with held_run_errors(hold=not verbose) as held:
            outcome = run_process(spec, settings, force=force)
    except ConfigurationError as exc:  # no usable Prefect API: nothing has run
        _error(str(exc))
        raise typer.Exit(EXIT_USAGE) from exc
    if outcome.unexpected:
        held.release()  # a bug: Prefect's account of it, traceback included
    if as_json:
        out.print_json(json.dumps(outcome.document))
    else:
        from deployments.report import print_job

        print_job(out, outcome)
    if outcome.error_line:
        err.print(outcome.error_line, markup=False, soft_wrap=True)
    raise typer.Exit(outcome.exit_code)


def _validation_text(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors():
        field = ".".join(str(p) for p in error["loc"]) or "input"
        parts.append(f"{field}: {error['msg']}")
    return "; ".join(parts)


@app.command()
def segment(
    images: Annotated[list[Path], typer.Argument(help="Photos to segment.")],
    out_dir: Annotated[
        Path, typer.Option("--out", help="Folder for NAME.mask.png and NAME.cutout.png.")
    ],
) -> None:
    """The local segmenter alone, for checking a difficult photo."""
    from core.providers.registry import new_remover
    from core.segment import segment_file

    settings = _settings()
    remover = new_remover(settings.model_copy(update={"segmenter": "local"}))
    failed = 0
    for image in images:
        started = time.perf_counter()
        try:
            result = segment_file(
                image,
                out_dir,
                remover,
                max_pixels=settings.max_source_pixels,
                min_side=settings.min_source_px,
            )
        except PipelineError as exc:
            err.print(f"[red]{escape(str(image))}:[/red] {escape(str(exc))}")
            failed += 1
            continue
        ms = (time.perf_counter() - started) * 1000
        out.print(
            f"{image.name}: product covers {result.coverage:.1%} → {result.mask.name}, "
            f"{result.cutout.name} ({ms:.0f} ms)"
        )
    raise typer.Exit(EXIT_USAGE if failed else EXIT_OK)


@app.command()
def publish(
    job_id: Annotated[str, typer.Argument(help="Job id (`packshot process --json` shows it).")],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the mutations that would be sent; send none.")
    ] = False,
) -> None:
    """Show what publishing a processed job would change in the storefront."""
    if not dry_run:
        err.print("publishing is the last step of the flow; --dry-run previews it")
        raise typer.Exit(EXIT_USAGE)
    from core.publishers.preview import preview_job

    try:
        plan = preview_job(_settings(), job_id)
    except (InputError, ConfigurationError) as exc:
        _error(str(exc))
        raise typer.Exit(EXIT_USAGE) from exc
    except PipelineError as exc:
        _error(str(exc))
        raise typer.Exit(EXIT_FAILED) from exc
    summary = {k: v for k, v in plan.as_dict().items() if k != "mutations"}
    out.print(json.dumps(summary, indent=2), soft_wrap=True, markup=False)
    for number, mutation in enumerate(plan.mutations, 1):
        out.print(f"\n# {number}. {mutation.name}\n{mutation.query}", soft_wrap=True, markup=False)
        out.print(json.dumps(mutation.variables, indent=2), soft_wrap=True, markup=False)
    if not plan.mutations:
        out.print("\nnothing to send")


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Create or upgrade the job tables."""
    from core.db import upgrade_schema
    from core.urls import redact_url

    settings = _settings()
    revision = upgrade_schema(settings.database_url)
    out.print(f"database {redact_url(settings.database_url)} at revision {revision}")


@app.command()
def webhook(
    host: Annotated[str | None, typer.Option(help="Address; PACKSHOT_BIND if unset.")] = None,
    port: Annotated[int | None, typer.Option(help="Port; PACKSHOT_WEBHOOK_PORT if unset.")] = None,
    dispatcher: Annotated[
        bool,
        typer.Option(
            "--dispatcher/--no-dispatcher",
            help="Create flow runs from this process (one dispatcher per SQLite database).",
        ),
    ] = True,
) -> None:
    """The webhook alone, with its flow-run dispatcher: what `packshot up` runs on :8000."""
    import uvicorn

    from deployments.prefect_env import apply_prefect_defaults

    settings = configure(dispatcher_enabled=dispatcher) if not dispatcher else _settings()
    apply_prefect_defaults(settings)
    if settings.webhook_secret is None:
        err.print(
            "[yellow]warning: PACKSHOT_WEBHOOK_SECRET is not set: signatures are not checked, "
            "anyone who can reach the port can submit jobs[/yellow]"
        )
    uvicorn.run(
        "webhook.app:create_app",
        factory=True,
        host=host or settings.bind,
        port=port or settings.webhook_port,
        access_log=False,
    )


@app.command()
def dispatcher() -> None:
    """Create the flow runs of accepted jobs, recover crashed runs and send events, in this
    process (what `packshot up` runs beside the webhook); Ctrl-C stops it."""
    import runpy

    from deployments.prefect_env import apply_prefect_defaults

    apply_prefect_defaults(_settings())
    runpy.run_module("webhook.background", run_name="__main__")


@app.command()
def dashboard(
    port: Annotated[
        int | None, typer.Option(help="Port; PACKSHOT_DASHBOARD_PORT if unset.")
    ] = None,
) -> None:
    """The Streamlit dashboard alone (what `packshot up` runs on :8501)."""
    from core.db import upgrade_schema
    from dashboard.access import open_to_anyone_problem
    from dashboard.launch import streamlit_argv, streamlit_env

    settings = _settings()
    problem = open_to_anyone_problem(settings)
    if problem:
        err.print(f"[red]error:[/red] {escape(problem)}")
        raise typer.Exit(EXIT_USAGE)
    upgrade_schema(settings.database_url)
    host = "127.0.0.1" if settings.bind in ("0.0.0.0", "::") else settings.bind
    out.print(f"dashboard on http://{host}:{port or settings.dashboard_port} (Ctrl-C stops it)")
    argv = streamlit_argv(settings, port=port)
    # Become the server: Ctrl-C and a supervisor's SIGTERM reach Streamlit itself.
    os.execve(argv[0], argv, streamlit_env(settings, os.environ))


def _register_stack_commands() -> None:
    from deployments import stack_commands

    app.command("up")(stack_commands.up)
    app.command("bootstrap")(stack_commands.bootstrap)
    app.command("demo")(stack_commands.demo)
    app.command("backfill")(stack_commands.backfill)
    from deployments.notify_cli import notify_app
    from deployments.review_cli import review_app

    app.add_typer(notify_app, name="notify")
    app.add_typer(review_app, name="review")


_register_stack_commands()


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)

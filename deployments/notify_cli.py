"""``packshot notify``: the event sender on its own, and ``notify test URL`` (a signed ping)."""

from __future__ import annotations

import signal
import threading
from types import FrameType
from typing import Annotated
from urllib.parse import urlsplit

import typer
from pydantic import ValidationError
from rich.console import Console

from core.db import upgrade_schema
from core.events.sender import Sender, send_ping
from core.logging import configure_logging
from core.settings import Settings, get_settings
from core.urls import redact_url

__all__ = ["notify_app"]

notify_app = typer.Typer(
    invoke_without_command=True,
    help="Outbound job events: run the sender (no subcommand), or send a test ping.",
)
# Receivers' answers and URLs are printed as they are: no Rich markup, no hard line breaks.
out = Console(highlight=False, markup=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, markup=False, soft_wrap=True)
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def _settings() -> Settings:
    try:
        return get_settings()
    except ValidationError as exc:
        err.print(f"invalid settings: {exc}")
        raise typer.Exit(EXIT_USAGE) from exc


def _unsigned_warning(settings: Settings) -> None:
    if not settings.notify_secrets:
        err.print("warning: PACKSHOT_NOTIFY_SECRET is not set: events go unsigned", style="yellow")


@notify_app.callback()
def notify(ctx: typer.Context) -> None:
    """Send the outbox's events until Ctrl-C (for running the sender apart from the webhook)."""
    if ctx.invoked_subcommand is not None:
        return
    settings = _settings()
    if not settings.notify_targets:
        err.print("PACKSHOT_NOTIFY_URL is not set: there are no events to send")
        raise typer.Exit(EXIT_USAGE)
    configure_logging(settings.log_level)
    _unsigned_warning(settings)
    upgrade_schema(settings.database_url)
    stop = threading.Event()

    def _stop(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    targets = ", ".join(redact_url(t) for t in settings.notify_targets)
    out.print(f"sending events to {targets} (Ctrl-C stops)")
    sender = Sender(settings)
    try:
        sender.run(stop)
    finally:
        sender.close()
    out.print(f"stopped: {sender.status()['delivered']} delivered")


@notify_app.command("test")
def test(
    url: Annotated[str, typer.Argument(help="The receiver's URL (http or https).")],
) -> None:
    """POST one signed `ping` event to URL now, so a receiver can check its verification."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        err.print(f"not an http(s) URL: {redact_url(url)}")
        raise typer.Exit(EXIT_USAGE)
    settings = _settings()
    _unsigned_warning(settings)
    event_id, answer = send_ping(settings, url)
    where = redact_url(url)
    if answer.ok:
        out.print(f"ping {event_id} delivered to {where}: HTTP {answer.status}")
        return
    err.print(f"ping {event_id} to {where} failed: {answer.error}")
    raise typer.Exit(EXIT_FAILED)

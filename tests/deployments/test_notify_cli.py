"""``packshot notify`` (the sender alone) and ``packshot notify test URL`` (a signed ping)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from core.settings import get_settings
from deployments.cli import app
from tests.events.helpers import configure, finish, make_job, receiver
from tests.events.receiver import Receiver

__all__ = ["receiver"]  # the fixture


def test_ping_is_signed_and_reported(monkeypatch: pytest.MonkeyPatch, receiver: Receiver) -> None:
    configure(monkeypatch, notify_secret="k1", notify_allow_private="true")
    result = CliRunner().invoke(app, ["notify", "test", receiver.url])
    assert result.exit_code == 0, result.output
    (got,) = receiver.received
    assert f"ping {got.event_id} delivered" in result.output and "HTTP 200" in result.output
    assert got.event["type"] == "ping" and "v1=" in got.headers["x-packshot-signature"]
    assert "k1" not in result.output


def test_ping_to_a_private_address_is_refused(
    monkeypatch: pytest.MonkeyPatch, receiver: Receiver
) -> None:
    configure(monkeypatch, notify_secret="k1")
    result = CliRunner().invoke(app, ["notify", "test", receiver.url])
    assert result.exit_code == 1 and "refused: event target host 127.0.0.1" in result.output
    assert receiver.received == []


def test_bad_usage(monkeypatch: pytest.MonkeyPatch) -> None:
    configure(monkeypatch)
    assert CliRunner().invoke(app, ["notify", "test", "ftp://x"]).exit_code == 2
    unset = CliRunner().invoke(app, ["notify"])
    assert unset.exit_code == 2 and "PACKSHOT_NOTIFY_URL is not set" in unset.output


def test_notify_sends_until_stopped(
    monkeypatch: pytest.MonkeyPatch, receiver: Receiver, packshot_env: Path
) -> None:
    configure(monkeypatch, notify_url=receiver.url, notify_allow_private="true")
    url = get_settings().database_url
    finish(url, make_job(url))
    command = [sys.executable, "-c", "from deployments.cli import main; main()", "notify"]
    process = subprocess.Popen(
        command, env=dict(os.environ), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        for _ in range(600):  # a guard against a hang, not a timing assertion
            if receiver.successes() or process.poll() is not None:
                break
            time.sleep(0.05)
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=60)
    assert process.returncode == 0, output
    assert len(receiver.successes()) == 1 and "stopped: 1 delivered" in output
    assert "events go unsigned" in output

"""``packshot dashboard``: creates the tables, then becomes the Streamlit server."""

from __future__ import annotations

import os

import pytest
from sqlalchemy import inspect
from typer.testing import CliRunner

from core.db import get_engine
from core.settings import get_settings
from dashboard.launch import APP_PATH
from deployments.cli import app


class Became(Exception):
    """Raised instead of replacing the test process with Streamlit."""


def test_dashboard_command_upgrades_the_schema_and_execs_streamlit(
    monkeypatch: pytest.MonkeyPatch, settings
):
    seen: dict[str, object] = {}

    def execve(path: str, argv: list[str], env: dict[str, str]) -> None:
        seen.update(path=path, argv=argv, env=env)
        raise Became

    monkeypatch.setattr(os, "execve", execve)
    monkeypatch.setenv("PACKSHOT_DASHBOARD_PORT", "8642")
    get_settings.cache_clear()
    result = CliRunner().invoke(app, ["dashboard"])

    assert isinstance(result.exception, Became), result.output
    assert "dashboard on http://127.0.0.1:8642" in result.output
    argv = seen["argv"]
    assert argv[1:5] == ["-m", "streamlit", "run", str(APP_PATH)] and seen["path"] == argv[0]
    assert argv[argv.index("--server.port") + 1] == "8642"
    assert argv[argv.index("--browser.gatherUsageStats") + 1] == "false"
    assert seen["env"]["PREFECT_SERVER_EPHEMERAL_ENABLED"] == "false"
    assert "job" in inspect(get_engine(get_settings().database_url)).get_table_names()

"""The Prefect API's credentials and guards: the generated auth string, who gets it, the pool lock.

The end-to-end proof against a running `packshot up` (401 without credentials, 422 for a
command override) is in test_up.py; these are the parts, each with the smallest set-up.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from pydantic import SecretStr

from core.errors import ConfigurationError
from core.settings import Settings
from dashboard.launch import streamlit_env
from deployments.bringup import (
    ENGINE_COMMAND,
    LOCKED_JOB_VARIABLES,
    ensure_work_pool,
    locked_job_template,
)
from deployments.prefect_auth import ensure_auth_string, server_env
from deployments.stack import Stack


def test_the_embedded_stack_generates_credentials_once_readable_by_its_owner_only(
    packshot_env: Path,
) -> None:
    first = ensure_auth_string(Settings())
    auth_file = Settings().prefect_auth_file
    assert auth_file.parent == packshot_env.resolve()
    assert stat.S_IMODE(auth_file.stat().st_mode) == 0o600
    user, _, password = first.partition(":")
    assert user == "packshot" and len(password) >= 32
    # Every later process of this home finds the same string through its settings.
    assert Settings().prefect_api_auth_string == SecretStr(first)
    assert ensure_auth_string(Settings()) == first
    auth_file.chmod(0o644)
    assert ensure_auth_string(Settings()) == first
    assert stat.S_IMODE(auth_file.stat().st_mode) == 0o600


def test_a_configured_string_wins_and_production_never_generates_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PREFECT_API_AUTH_STRING", "ops:configured-elsewhere")
    assert ensure_auth_string(Settings()) == "ops:configured-elsewhere"
    monkeypatch.delenv("PREFECT_API_AUTH_STRING")
    production = Settings(profile="production")
    with pytest.raises(ConfigurationError, match="PREFECT_API_AUTH_STRING must be set"):
        ensure_auth_string(production)
    assert not production.prefect_auth_file.exists()


def test_only_the_server_gets_its_side_and_every_child_the_client_side(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("PREFECT_API_URL", raising=False)  # this stack starts its own server
    monkeypatch.setenv("PREFECT_SERVER_API_AUTH_STRING", "leaked:from-the-shell")
    monkeypatch.setenv("PREFECT_UI_URL", "https://prefect.example.com/ui/")
    stack = Stack(Settings())
    auth = stack.auth
    assert auth is not None and auth == Settings().prefect_api_auth_string.get_secret_value()  # type: ignore[union-attr]
    server = stack.service("prefect")
    assert server.env == server_env(Settings(), auth, stack.ui_url)
    assert server.env["PREFECT_SERVER_API_AUTH_STRING"] == auth
    assert server.env["PREFECT_SERVER_API_CSRF_PROTECTION_ENABLED"] == "true"
    assert server.env["PREFECT_SERVER_API_CORS_ALLOWED_ORIGINS"] == "https://prefect.example.com"
    assert stack.env["PREFECT_API_AUTH_STRING"] == auth
    assert "PREFECT_SERVER_API_AUTH_STRING" not in stack.env
    for service in stack.services:
        assert not any(auth in arg for arg in service.argv), service.name
    # `packshot dashboard` alone: the credentials reach Streamlit through its environment.
    assert streamlit_env(Settings(), os.environ)["PREFECT_API_AUTH_STRING"] == auth


def test_the_locked_template_offers_no_command_directory_or_environment() -> None:
    template = locked_job_template()
    for name in LOCKED_JOB_VARIABLES:
        assert name not in template["variables"]["properties"]
    assert "working_dir" not in template["job_configuration"]
    assert "env" not in template["job_configuration"]
    # The command is fixed text, no placeholder a job variable could fill.
    assert template["job_configuration"]["command"] == ENGINE_COMMAND
    assert "{{" not in ENGINE_COMMAND
    assert template["variables"]["additionalProperties"] is False
    assert {"name", "labels", "stream_output"} <= set(template["variables"]["properties"])


@pytest.mark.xdist_group("prefect")
@pytest.mark.timeout(600)  # may be the first test of its process to start the test server
def test_bring_up_locks_a_pool_a_worker_created_with_the_default_template(
    prefect_server: str,
) -> None:
    from prefect import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import PrefectHTTPStatusError

    with get_client(sync_client=True) as client:
        # What `prefect worker start --type process` does when it finds no pool.
        client.create_work_pool(WorkPoolCreate(name="unlocked", type="process"))
        ensure_work_pool("unlocked")
        assert client.read_work_pool("unlocked").base_job_template == locked_job_template()
        flow_id = client.create_flow_from_name("locked-pool-probe")
        deployment = client.create_deployment(
            flow_id=flow_id, name="probe", work_pool_name="unlocked", entrypoint="x.py:f"
        )
        with pytest.raises(PrefectHTTPStatusError) as refused:
            client.create_flow_run_from_deployment(
                deployment, job_variables={"command": "touch /tmp/owned"}
            )
    assert refused.value.response.status_code == 422

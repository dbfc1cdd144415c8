"""The production profile: what it refuses, what it hands to workers, what `packshot up` starts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from typer.testing import CliRunner

from core.settings import Settings
from deployments.cli import app
from deployments.engine_start import SOCKET_ENV
from deployments.profile import (
    ResultsLocation,
    ensure_results_block,
    problems,
    results_location,
    worker_env,
)
from deployments.stack import SERVICES, Stack

PG = "postgresql+psycopg://packshot:pw@db:5432/packshot"
PREFECT_PG = "postgresql+asyncpg://prefect:pw@db:5432/prefect"


AUTH = "packshot:a-long-prefect-password"


def _production(
    prefect_database_url: str | None = PREFECT_PG, auth: str | None = AUTH, **overrides: Any
) -> Settings:
    values: dict[str, Any] = {
        "profile": "production",
        "database_url": PG,
        "store_url": "s3://shop-media/assets",
        "webhook_secret": "a-real-shared-secret",
        "secret_key": "a-key-for-source-url-credentials",
        "dashboard_password": "a-dashboard-password",
    }
    values.update(overrides)
    # Read from Prefect's own variables (aliases), so they are set the way the environment would;
    # a Prefect test server of an earlier test in this process exported PREFECT_API_URL.
    server_db = SecretStr(prefect_database_url) if prefect_database_url else None
    return Settings(**values).model_copy(
        update={
            "prefect_database_url": server_db,
            "prefect_api_auth_string": SecretStr(auth) if auth else None,
            "prefect_api_url": None,
        }
    )


def test_the_embedded_profile_requires_nothing() -> None:
    assert problems(Settings(), SERVICES) == []
    assert worker_env(Settings()) == {}


def test_a_complete_production_profile_passes() -> None:
    assert problems(_production(), SERVICES) == []


def test_production_refuses_local_state_naming_each_variable() -> None:
    found = problems(
        _production(database_url="sqlite:///x.db", store_url="file:///tmp/store"), SERVICES
    )
    assert len(found) == 2
    assert found[0].startswith("PACKSHOT_DATABASE_URL must name PostgreSQL")
    assert found[1].startswith("PACKSHOT_STORE_URL must be s3://")


def test_the_prefect_server_needs_postgresql_unless_it_runs_elsewhere() -> None:
    sqlite_server = _production(prefect_database_url="sqlite+aiosqlite:///prefect.db")
    assert any(
        "PREFECT_API_DATABASE_CONNECTION_URL" in p for p in problems(sqlite_server, SERVICES)
    )
    assert problems(_production(prefect_database_url=None), ["worker", "webhook"]) == []
    remote = _production(prefect_database_url=None)
    remote = remote.model_copy(update={"prefect_api_url": "http://prefect:4200/api"})
    assert problems(remote, SERVICES) == []


def test_production_webhooks_must_be_signed() -> None:
    found = problems(_production(webhook_secret=None), ["webhook"])
    assert found == ["PACKSHOT_WEBHOOK_SECRET must be set: production refuses unsigned deliveries"]


def test_production_requires_prefect_credentials_a_secret_key_and_long_secrets() -> None:
    found = problems(_production(auth=None, secret_key=None), ["worker"])
    assert len(found) == 2
    assert found[0].startswith("PREFECT_API_AUTH_STRING must be set (user:password, at least 16")
    assert found[1].startswith("PACKSHOT_SECRET_KEY must be set")
    short = problems(_production(auth="u:short-string"), SERVICES)
    assert [p.split(" must")[0] for p in short] == ["PREFECT_API_AUTH_STRING"]
    assert problems(_production(auth="u:sixteen-chars!"), SERVICES) == []


def test_packshot_up_production_refuses_to_start_without_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in {
        "PACKSHOT_DATABASE_URL": PG,
        "PACKSHOT_STORE_URL": "s3://shop-media/assets",
        "PREFECT_API_DATABASE_CONNECTION_URL": PREFECT_PG,
        "PACKSHOT_WEBHOOK_SECRET": "a-long-enough-webhook-secret",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("PREFECT_API_AUTH_STRING", raising=False)
    monkeypatch.delenv("PREFECT_API_URL", raising=False)  # a test server of an earlier test

    def refusal() -> str:
        result = CliRunner().invoke(app, ["up", "--profile", "production"])
        assert result.exit_code == 2, result.output
        return " ".join(result.output.split())  # the console wraps long lines

    text = refusal()
    assert "PREFECT_API_AUTH_STRING must be set" in text
    assert "PACKSHOT_SECRET_KEY must be set" in text
    monkeypatch.setenv("PACKSHOT_WEBHOOK_SECRET", "short-secret")
    assert "PACKSHOT_WEBHOOK_SECRET is shorter than 16 characters" in refusal()


DASHBOARD_REFUSAL = "PACKSHOT_DASHBOARD_PASSWORD must be set, or an [auth] section"


def test_a_production_dashboard_needs_a_sign_in(tmp_path: Path) -> None:
    # The root conftest runs every test in its own working folder: no secrets.toml here yet.
    open_dashboard = _production(dashboard_password=None)
    assert [p for p in problems(open_dashboard, ["dashboard"]) if DASHBOARD_REFUSAL in p]
    assert problems(open_dashboard, ["worker", "webhook"]) == [], "only the dashboard needs it"
    assert problems(Settings(), ["dashboard"]) == [], "the embedded profile may stay open"

    secrets = Path.cwd() / ".streamlit" / "secrets.toml"
    secrets.parent.mkdir()
    secrets.write_text("[server]\nx = 1\n[auth]\n")  # an empty [auth] configures nothing
    assert [p for p in problems(open_dashboard, ["dashboard"]) if DASHBOARD_REFUSAL in p]
    secrets.write_text('[auth]\nclient_id = "packshot"\ncookie_secret = "c"\n')
    assert problems(open_dashboard, ["dashboard"]) == [], "Streamlit's OIDC sign-in"
    secrets.write_text("[auth\n")
    [problem] = problems(open_dashboard, ["dashboard"])
    assert str(secrets) in problem and "not a readable TOML file" in problem


def test_packshot_dashboard_refuses_to_serve_open_actions_in_production(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PACKSHOT_PROFILE", "production")
    # Were it not refused, the command would become the Streamlit server (execve).
    monkeypatch.setattr("os.execve", lambda *args: pytest.fail("the dashboard started"))
    result = CliRunner().invoke(app, ["dashboard"])
    assert result.exit_code == 2, result.output
    assert DASHBOARD_REFUSAL in " ".join(result.output.split())


def test_the_zombie_window_must_exceed_the_heartbeat() -> None:
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

    # A setting in context, not the environment: the test server of an earlier test in this
    # process holds the heartbeat switched off in context, which wins over the environment.
    with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: 120}):
        assert problems(_production(zombie_after_s=300), SERVICES) == []
        found = problems(_production(zombie_after_s=100), SERVICES)
    assert len(found) == 1 and "PACKSHOT_ZOMBIE_AFTER_S (100)" in found[0]


def test_results_go_to_the_store_bucket_or_where_configured() -> None:
    assert results_location(_production()) == ResultsLocation("shop-media", "prefect-results")
    explicit = _production(results_url="s3://results-bucket/team/prefect/")
    assert results_location(explicit) == ResultsLocation("results-bucket", "team/prefect")
    assert results_location(Settings()) is None
    assert problems(_production(results_url="file:///tmp/r"), SERVICES) == [
        "PACKSHOT_RESULTS_URL must look like s3://bucket/prefix"
    ]
    assert worker_env(_production()) == {
        "PREFECT_RESULTS_DEFAULT_STORAGE_BLOCK": "s3-bucket/packshot-results",
        "PREFECT_RESULTS_PERSIST_BY_DEFAULT": "true",
    }


def test_a_worker_machine_runs_n_workers_and_no_bring_up() -> None:
    settings = _production(worker_limit=3).model_copy(
        update={"prefect_api_url": "http://prefect:4200/api"}
    )
    stack = Stack(settings, services=["worker"], workers=3)
    workers = [s for s in stack.services if not s.name.endswith("-engine")]
    assert [s.name for s in workers] == ["worker-1", "worker-2", "worker-3"]
    assert not stack.own_server and not stack.bootstrap
    argv = workers[0].argv
    assert argv[argv.index("--limit") + 1] == "3" and argv[argv.index("--pool") + 1] == "local"
    assert workers[0].env["PREFECT_RESULTS_DEFAULT_STORAGE_BLOCK"].startswith("s3-bucket/")
    # Each worker has its own warm engine, with the worker's environment (it forks only for
    # runs that have it) and the socket its flow runs' command is told of.
    engines = {s.name: s for s in stack.services if s.name.endswith("-engine")}
    assert sorted(engines) == ["worker-1-engine", "worker-2-engine", "worker-3-engine"]
    for worker in workers:
        engine = engines[f"{worker.name}-engine"]
        assert engine.env == worker.env and engine.nice == worker.nice
        assert engine.batch and worker.batch
        assert engine.argv[engine.argv.index("--socket") + 1] == worker.env[SOCKET_ENV]
    assert len({worker.env[SOCKET_ENV] for worker in workers}) == 3
    assert stack.env["PREFECT_API_URL"] == "http://prefect:4200/api"


def test_only_the_prefect_server_sees_its_database_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PREFECT_API_DATABASE_CONNECTION_URL", PREFECT_PG)
    stack = Stack(_production(), services=["prefect", "worker"])
    assert [s.name for s in stack.services] == ["prefect", "worker-engine", "worker"]
    assert stack.services[0].env["PREFECT_API_DATABASE_CONNECTION_URL"] == PREFECT_PG
    assert "PREFECT_API_DATABASE_CONNECTION_URL" not in stack.env
    for service in stack.services[1:]:
        assert "PREFECT_API_DATABASE_CONNECTION_URL" not in service.env
    with pytest.raises(ValueError, match="unknown services"):
        Stack(_production(), services=["prefect", "ftp"])


def test_packshot_up_refuses_an_incomplete_production_profile() -> None:
    result = CliRunner().invoke(app, ["up", "--profile", "production"])
    assert result.exit_code == 2
    assert "PACKSHOT_DATABASE_URL must name PostgreSQL" in result.output
    assert "PACKSHOT_STORE_URL must be s3://" in result.output
    bad = CliRunner().invoke(app, ["up", "--services", "prefect,ftp"])
    assert bad.exit_code == 2 and "choose from prefect, worker, webhook, dashboard" in bad.output


@pytest.mark.xdist_group("prefect")
def test_bring_up_stores_a_keyless_results_block(prefect_server: str) -> None:
    from prefect_aws import S3Bucket

    settings = _production(s3_endpoint_url="http://minio.internal:9000", s3_region="eu-west-1")
    assert ensure_results_block(settings)
    assert ensure_results_block(settings)  # idempotent
    block = S3Bucket.load("packshot-results", _sync=True)  # type: ignore[call-arg]
    assert (block.bucket_name, block.bucket_folder) == ("shop-media", "prefect-results")
    credentials = block.credentials
    assert credentials.aws_client_parameters.endpoint_url == "http://minio.internal:9000"
    assert credentials.region_name == "eu-west-1"
    assert credentials.aws_access_key_id is None  # each machine's own AWS chain
    assert not ensure_results_block(Settings())

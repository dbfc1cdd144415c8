"""The background Prefect server of one-off commands: started once, reused, stopped when idle."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import uuid
from pathlib import Path

import httpx
import pytest

from core.errors import ConfigurationError
from core.settings import Settings
from deployments import local_server
from deployments.prefect_env import locate_api, locate_api_url


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _settings(home: Path, idle_s: float) -> Settings:
    return Settings(
        home=home,
        prefect_port=_free_port(),
        local_server_idle_s=idle_s,
        prefect_api_url=None,
        prefect_api_auth_string=None,
    )


def test_a_new_home_starts_from_the_template_and_an_existing_database_is_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PREFECT_API_DATABASE_CONNECTION_URL", raising=False)
    template = tmp_path / "template.db"
    monkeypatch.setattr(local_server, "template_path", lambda: template)
    settings = _settings(tmp_path / "home", 60)
    assert not local_server.seed_database(settings)  # no template built: Prefect migrates
    template.write_bytes(b"migrated")
    assert local_server.seed_database(settings)
    database = settings.prefect_home / "prefect.db"
    assert database.read_bytes() == b"migrated"
    database.write_bytes(b"in use")
    assert not local_server.seed_database(settings)
    assert database.read_bytes() == b"in use"
    configured = settings.model_copy(update={"prefect_database_url": "postgresql://db/prefect"})
    database.unlink()
    assert not local_server.seed_database(configured)
    assert not database.exists()


def test_the_server_is_started_once_reused_then_stops_when_unused(tmp_path: Path) -> None:
    settings = _settings(tmp_path / "home", idle_s=3)
    first = locate_api(settings)
    try:
        assert first.kind == "background" and not first.has_workers
        first.wait()
        assert first.url.endswith(f":{settings.prefect_port}/api")
        # Loopback only, and the embedded credentials are required.
        anonymous = httpx.get(f"{first.url}/admin/version", timeout=10)
        assert anonymous.status_code == 401
        assert first.auth and (settings.home / "prefect-api-auth").read_text().strip() == first.auth
        user, password = first.auth.split(":", 1)
        signed = httpx.get(f"{first.url}/admin/version", auth=(user, password), timeout=10)
        assert signed.status_code == 200
        # Its database has Prefect's tables (copied from the template, or migrated at start).
        unknown = f"{first.url}/flows/{uuid.uuid4()}"
        assert httpx.get(unknown, auth=(user, password), timeout=10).status_code == 404
        # Not a stack: commands that need deployments and workers do not use it.
        assert locate_api_url(settings) is None
        running = local_server.find(settings)
        assert running is not None
        second = locate_api(settings)
        second.wait()
        assert local_server.find(settings) == running  # the same process, no second server
        assert second.startup_ms < 1000
        time.sleep(4)  # longer than the idle time, but both commands still use it
        assert running.alive()
        second.stop()
    finally:
        first.stop()
    deadline = time.monotonic() + 30
    while running.alive():
        assert time.monotonic() < deadline, "the unused server kept running"
        time.sleep(0.2)
    assert local_server.find(settings) is None
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"{running.api_url}/health", timeout=2)


def test_finding_the_running_server_restarts_its_idle_countdown(tmp_path: Path) -> None:
    settings = _settings(tmp_path / "home", idle_s=60)
    settings.prefect_home.mkdir(parents=True)
    state = settings.prefect_home / "background-server.json"
    # A live pid stands for the server's process: start() must find it, not spawn one.
    state.write_text(json.dumps({"pid": os.getpid(), "port": settings.prefect_port}))
    long_ago = time.time() - 55
    os.utime(state, (long_ago, long_ago))
    found = local_server.start(settings)
    assert found.pid == os.getpid()
    assert time.time() - state.stat().st_mtime < 5


def test_stop_ends_a_running_server(tmp_path: Path) -> None:
    settings = _settings(tmp_path / "home", idle_s=600)
    api = locate_api(settings)
    try:
        api.wait()
        api.stop()
        running = local_server.find(settings)
        assert running is not None and running.alive()  # released, but not idle for 600 s
        assert local_server.stop(settings)
        assert not running.alive() and local_server.find(settings) is None
        assert not local_server.stop(settings)
    finally:
        local_server.stop(settings)


def test_packshot_process_starts_the_server_before_the_cli_loads_and_the_command_reuses_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from deployments import entry, server_process

    standbys: list[subprocess.Popen[bytes]] = []
    spawn = server_process.spawn
    monkeypatch.setattr(server_process, "spawn", lambda: standbys.append(spawn()) or standbys[-1])
    settings = _settings(tmp_path / "home", idle_s=600)
    monkeypatch.setenv("PACKSHOT_HOME", str(settings.home))
    monkeypatch.setenv("PACKSHOT_PREFECT_PORT", str(settings.prefect_port))
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    monkeypatch.delenv("PREFECT_API_AUTH_STRING", raising=False)
    try:
        # Other commands, and asking for help, start nothing.
        assert not entry.prestart(["status"])
        assert not entry.prestart(["process", "--help"])
        assert local_server.find(settings) is None and not standbys
        assert entry.prestart(["process", "photo.jpg", "--sku", "X"])
        started = local_server.find(settings)
        assert started is not None and started.alive()
        assert started.pid == standbys[0].pid  # the process started on standby serves
        api = locate_api(settings)  # what the command does once it has loaded
        api.wait()
        assert local_server.find(settings) == started  # the same server, not a second one
        api.stop()
        # The next command finds it running: its own standby process is ended.
        assert entry.prestart(["process", "photo.jpg", "--sku", "Y"])
        assert local_server.find(settings) == started
        assert standbys[1].returncode is not None
        # With a stack's API configured, nothing is started, and the standby is ended.
        monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:9/api")
        other = _settings(tmp_path / "other", idle_s=600)
        monkeypatch.setenv("PACKSHOT_HOME", str(other.home))
        assert not entry.prestart(["process", "photo.jpg", "--sku", "X"])
        assert local_server.find(other) is None
        assert standbys[2].returncode is not None
    finally:
        local_server.stop(settings)


def test_another_homes_server_on_the_port_is_named_not_used(tmp_path: Path) -> None:
    mine = _settings(tmp_path / "mine", idle_s=600)
    other = mine.model_copy(update={"home": tmp_path / "other"})  # same port, its own credentials
    api = locate_api(mine)
    try:
        api.wait()
        api.stop()
        assert locate_api_url(mine) is None  # this home's own background server: not a stack
        with pytest.raises(ConfigurationError, match=rf"127\.0\.0\.1:{mine.prefect_port} is taken"):
            locate_api_url(other)
        with pytest.raises(ConfigurationError, match="PACKSHOT_PREFECT_PORT"):
            locate_api(other)
        assert local_server.find(other) is None  # nothing started on the taken port
    finally:
        local_server.stop(mine)

"""The job page's Re-run action: confirmation, the real trigger function, Prefect down or refusing.

Only Prefect's ``arun_deployment`` is replaced (the boundary ``flows.trigger`` calls);
the dashboard, ``trigger_job_sync`` and the health probe run for real against a local HTTP
server standing in for the Prefect API (``prefect_api`` and ``deployments`` in conftest.py).
"""

from __future__ import annotations

import socket
from datetime import UTC

from core import settings as settings_module
from core.db import session_scope
from core.tables import Job
from flows.trigger import PROCESS_IMAGE_DEPLOYMENT
from tests.dashboard.prefect_stub import FakeDeployments, use_prefect_api
from tests.dashboard.rendered import shown


def _dialog_open(at) -> bool:
    return any(button.key == "rerun-confirm" for button in at.button)


def _confirm(at, *, force: bool = False):
    at.button(key="rerun-open").click().run()
    assert _dialog_open(at), "the confirmation dialog is open"
    if force:
        at.checkbox(key="rerun-force").check().run()
    return at.button(key="rerun-confirm").click().run()


def test_rerun_asks_first_then_triggers_the_deployment(
    app, done_job, prefect_api, deployments, settings
):
    at = app(job=str(done_job))
    at.button(key="rerun-open").click().run()
    assert deployments.runs == [], "nothing is triggered before the confirmation"
    at.button(key="rerun-confirm").click().run()

    assert len(deployments.runs) == 1
    run = deployments.runs[0]
    assert run["name"] == PROCESS_IMAGE_DEPLOYMENT
    params = run["parameters"]
    assert params["job_id"] == str(done_job) and params["sku"] == "LAMP-1"
    assert "force" not in params
    with session_scope(settings.database_url) as session:
        finished = session.get(Job, done_job).finished_at
    # A re-run key names the finish it re-runs: a later re-run of the same job gets a new run.
    stamp = int(finished.replace(tzinfo=UTC).timestamp())
    assert run["idempotency_key"] == f"{done_job}:rerun:{stamp}"
    message = at.success[0].value
    assert f"flow run {run['id']} · open in Prefect" in shown(message)
    assert f"(<{prefect_api[:-4]}/runs/flow-run/{run['id']}>)" in message, "the link"
    assert not _dialog_open(at), "the dialog closed"


def test_a_second_click_asks_for_the_same_run(app, done_job, prefect_api, deployments):
    at = app(job=str(done_job))
    _confirm(at)
    _confirm(at)
    keys = {run["idempotency_key"] for run in deployments.runs}
    assert len(deployments.runs) == 2 and len(keys) == 1, "Prefect dedupes on the same key"


def test_force_rerun_passes_force(app, done_job, prefect_api, deployments):
    at = app(job=str(done_job))
    _confirm(at, force=True)
    assert deployments.runs[0]["parameters"]["force"] is True


def test_cancel_triggers_nothing(app, done_job, prefect_api, deployments):
    at = app(job=str(done_job))
    at.button(key="rerun-open").click().run()
    at.button(key="rerun-cancel").click().run()
    assert deployments.runs == [] and not _dialog_open(at)


def test_prefect_unreachable_is_a_clear_error(app, done_job, monkeypatch, deployments):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    use_prefect_api(monkeypatch, f"http://127.0.0.1:{closed_port}/api")
    at = _confirm(app(job=str(done_job)))
    message = shown(at.error[0].value)
    assert "Re-run not started" in message and f"127.0.0.1:{closed_port}" in message
    assert "unreachable" in message
    assert deployments.runs == []


def test_prefect_refusing_the_run_is_a_clear_error(app, done_job, prefect_api, monkeypatch):
    from prefect.exceptions import ObjectNotFound

    fake = FakeDeployments(error=ObjectNotFound(http_exc=Exception("deployment not found")))
    monkeypatch.setattr("prefect.deployments.arun_deployment", fake.arun_deployment)
    at = _confirm(app(job=str(done_job)))
    assert "Prefect refused the run: ObjectNotFound" in shown(at.error[0].value)


def test_without_a_prefect_api_the_button_says_why(app, done_job, monkeypatch):
    # The session's Prefect test server exports PREFECT_API_URL once a test in this process used it.
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    settings_module.get_settings.cache_clear()
    button = app(job=str(done_job)).button(key="rerun-open")
    assert button.disabled and "PREFECT_API_URL" in button.help

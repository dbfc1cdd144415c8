"""Idempotent bring-up of a Prefect server: work pool, deployments, limits, automations.

Safe to run at every start, against the embedded server or a production one. The work pool's
base job template is locked: a flow run (or a deployment) cannot choose the command a worker
runs, its working directory or its environment, so whoever may create flow runs still cannot
make a worker run something else (the API answers 422).
"""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

from core.errors import ConfigurationError
from core.settings import Settings
from deployments.prefect_auth import accepts
from deployments.prefect_env import prefect_api
from deployments.profile import ensure_results_block

__all__ = [
    "ENGINE_COMMAND",
    "LOCKED_JOB_VARIABLES",
    "ROOT",
    "bring_up",
    "check_authentication",
    "deploy_all",
    "ensure_work_pool",
    "ensure_zombie_automation",
    "locked_job_template",
]

ROOT = Path(__file__).resolve().parents[1]
WORK_POOL = "local"
ZOMBIE_AUTOMATION = "packshot-crash-zombie-flows"
# What a job variable could otherwise set: the command run, where, and with which environment.
LOCKED_JOB_VARIABLES = ("command", "working_dir", "env")
# Fixed in the pool's template (no variable can change it). A configured command also makes the
# process worker start the engine directly: without one, Prefect starts a workspace supervisor
# process first (a second interpreter per flow run, about 1.5 s here) that would only prepare
# the temporary directory the deployment's pull step leaves anyway. `python` is the Packshot
# environment's: the stack puts its bin folder first on the workers' PATH. The command forks
# the run from the worker's warm engine when it has one (deployments.engine_start), else it
# becomes `python -m prefect.engine`.
ENGINE_COMMAND = "python -m deployments.engine_start prefect.engine"
log = logging.getLogger("packshot.bringup")


def locked_job_template() -> dict[str, Any]:
    """Prefect's process template without the locked variables, refusing unknown ones.

    Flow runs get a fixed command (``ENGINE_COMMAND``), a temporary working directory (the
    deployment's pull step moves to the code) and the worker's environment.
    """
    from prefect.workers.process import ProcessWorker

    template = ProcessWorker.get_default_base_job_template()
    for name in LOCKED_JOB_VARIABLES:
        template["job_configuration"].pop(name, None)
        template["variables"]["properties"].pop(name, None)
    template["job_configuration"]["command"] = ENGINE_COMMAND
    template["variables"]["additionalProperties"] = False
    return template


def ensure_work_pool(name: str = WORK_POOL) -> None:
    """Create the process work pool with the locked template, or lock an existing one."""
    from prefect import get_client
    from prefect.client.schemas.actions import WorkPoolCreate, WorkPoolUpdate
    from prefect.exceptions import ObjectNotFound

    template = locked_job_template()
    with get_client(sync_client=True) as client:
        try:
            pool = client.read_work_pool(name)
        except ObjectNotFound:
            client.create_work_pool(
                WorkPoolCreate(name=name, type="process", base_job_template=template)
            )
            log.info("created work pool %s", name)
            return
        if pool.base_job_template != template:
            # A pool created by a worker (or an older Packshot) offers the locked variables.
            client.update_work_pool(name, WorkPoolUpdate(base_job_template=template))
            log.info("locked the job template of work pool %s", name)


def deploy_all(env: dict[str, str]) -> None:
    """``prefect --no-prompt deploy --all`` from the repository root (prefect.yaml)."""
    prefect = str(Path(sys.executable).with_name("prefect"))
    result = subprocess.run(
        [prefect, "--no-prompt", "deploy", "--all"],
        cwd=ROOT,
        env={**env, "PWD": str(ROOT)},
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        tail = (result.stdout + result.stderr).strip().splitlines()[-15:]
        raise RuntimeError("prefect deploy failed:\n" + "\n".join(tail))


def ensure_zombie_automation(within: timedelta = timedelta(seconds=600)) -> None:
    """Mark flow runs whose machine died as Crashed once their heartbeats stop for ``within``.

    An automation with another window (the setting changed) is replaced.
    """
    asyncio.run(_ensure_zombie_automation(within))


async def _ensure_zombie_automation(within: timedelta) -> None:
    from prefect.automations import Automation
    from prefect.client.schemas.objects import StateType
    from prefect.events.actions import ChangeFlowRunState
    from prefect.events.schemas.automations import EventTrigger, Posture
    from prefect.events.schemas.events import ResourceSpecification

    try:
        existing: Automation | None = await Automation.aread(name=ZOMBIE_AUTOMATION)
    except ValueError:
        existing = None
    if existing is not None:
        if getattr(existing.trigger, "within", None) == within:
            return
        await existing.adelete()
    await Automation(
        name=ZOMBIE_AUTOMATION,
        trigger=EventTrigger(
            after={"prefect.flow-run.heartbeat"},
            expect={
                "prefect.flow-run.heartbeat",
                "prefect.flow-run.Completed",
                "prefect.flow-run.Failed",
                "prefect.flow-run.Cancelled",
                "prefect.flow-run.Crashed",
            },
            match=ResourceSpecification({"prefect.resource.id": ["prefect.flow-run.*"]}),
            for_each={"prefect.resource.id"},
            posture=Posture.Proactive,
            threshold=1,
            within=within,
        ),
        actions=[ChangeFlowRunState(state=StateType.CRASHED, message="no heartbeat")],
    ).acreate()
    log.info("created automation %s (%s without a heartbeat)", ZOMBIE_AUTOMATION, within)


def _ensure_provider_limits() -> None:
    """Concurrency limits of paid APIs, created by their modules when present."""
    import importlib

    for module, function in (
        ("tasks._limits", "ensure_limits"),
        ("tasks._shopify_limits", "ensure_shopify_limits"),
    ):
        try:
            ensure = getattr(importlib.import_module(module), function)
        except (ImportError, AttributeError):
            continue
        ensure()


def check_authentication(api_url: str, settings: Settings) -> None:
    """Refuse (production) or warn about a Prefect API that answers without credentials.

    Raises:
        ConfigurationError: production, and the server does not require authentication.
    """
    if not accepts(api_url):  # without credentials
        return
    problem = (
        f"the Prefect API at {api_url} answers requests without credentials: anyone who "
        "reaches it can run code on the workers. Start the server with "
        "PREFECT_SERVER_API_AUTH_STRING set to the value of PREFECT_API_AUTH_STRING "
        "(docs/security.md)"
    )
    if settings.profile == "production":
        raise ConfigurationError(problem)
    log.warning("%s", problem)


def bring_up(env: dict[str, str], settings: Settings) -> None:
    """Everything a fresh or existing Prefect server needs before workers start.

    ``env["PREFECT_API_URL"]`` names the server, ``env["PREFECT_API_AUTH_STRING"]`` (if set)
    holds its credentials; this process talks to it too.

    Raises:
        ConfigurationError: production, and the server does not require authentication.
    """
    api_url = env["PREFECT_API_URL"]
    check_authentication(api_url, settings)
    with prefect_api(api_url, env.get("PREFECT_API_AUTH_STRING")):
        ensure_work_pool()
        deploy_all(env)
        _ensure_provider_limits()
        ensure_zombie_automation(timedelta(seconds=settings.zombie_after_s))
        if ensure_results_block(settings):
            log.info("results on S3 through block s3-bucket/%s", settings.results_block)

"""Idempotent bring-up of a Prefect server: work pool, deployments, limits, automations.

Safe to run at every start, against the embedded server or a production one.
"""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

from core.settings import Settings
from deployments.profile import ensure_results_block

__all__ = ["ROOT", "bring_up", "deploy_all", "ensure_work_pool", "ensure_zombie_automation"]

ROOT = Path(__file__).resolve().parents[1]
WORK_POOL = "local"
ZOMBIE_AUTOMATION = "packshot-crash-zombie-flows"
log = logging.getLogger("packshot.bringup")


def ensure_work_pool(name: str = WORK_POOL) -> None:
    """Create the process work pool unless it exists."""
    from prefect import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectNotFound

    with get_client(sync_client=True) as client:
        try:
            client.read_work_pool(name)
        except ObjectNotFound:
            client.create_work_pool(WorkPoolCreate(name=name, type="process"))
            log.info("created work pool %s", name)


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


def bring_up(env: dict[str, str], settings: Settings) -> None:
    """Everything a fresh or existing Prefect server needs before workers start.

    ``env["PREFECT_API_URL"]`` names the server; this process talks to it too.
    """
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: env["PREFECT_API_URL"]}):
        ensure_work_pool()
        deploy_all(env)
        _ensure_provider_limits()
        ensure_zombie_automation(timedelta(seconds=settings.zombie_after_s))
        if ensure_results_block(settings):
            log.info("results on S3 through block s3-bucket/%s", settings.results_block)

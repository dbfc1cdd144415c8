"""The operator path: `prefect deploy --all`, `prefect deployment run --params`, a worker's execute."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from sqlmodel import select

from core.db import session_scope
from core.settings import get_settings
from core.tables import Job
from deployments.bringup import ROOT, deploy_all, ensure_work_pool
from flows.trigger import BACKFILL_DEPLOYMENT, PROCESS_IMAGE_DEPLOYMENT
from tests.helpers.http_server import Reply, Script, serve
from tests.helpers.images import jpeg_bytes, product_photo

# Three `prefect` CLI runs of up to 240 s each.
pytestmark = [pytest.mark.xdist_group("prefect"), pytest.mark.timeout(600)]
PREFECT = str(Path(sys.executable).with_name("prefect"))


def _prefect(*args: str) -> str:
    result = subprocess.run(
        [PREFECT, *args],
        cwd=ROOT,
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_numeric_sku_through_prefect_deployment_run(prefect_server: str) -> None:
    ensure_work_pool()
    deploy_all(dict(os.environ))
    deployments = _prefect("deployment", "ls")
    # The names the code triggers are the ones prefect.yaml declares.
    assert PROCESS_IMAGE_DEPLOYMENT in deployments and BACKFILL_DEPLOYMENT in deployments
    data = jpeg_bytes(product_photo())
    script = Script()
    script.add("/media/12345.jpg", Reply(200, data))
    with serve(script) as base:
        params = {
            "sku": 12345,
            "image_url": f"{base}/media/12345.jpg",
            "sha256": hashlib.sha256(data).hexdigest(),
            "theme": "white",
        }
        output = _prefect(
            "deployment", "run", "process-image/default", "--params", json.dumps(params)
        )
        run_id = re.search(r"UUID:\s*([0-9a-f-]{36})", output)
        assert run_id, output
        _prefect("flow-run", "execute", run_id.group(1))  # what a worker runs for the flow run
    with session_scope(get_settings().database_url) as session:
        job = session.exec(select(Job)).one()
    assert (job.sku, job.status, job.flow_run_id) == ("12345", "DONE", run_id.group(1))

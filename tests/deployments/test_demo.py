"""`packshot demo --exit --samples 1` as a user runs it: the stack, one signed delivery and its
duplicate, the summary, exit code 0, and nothing of the stack left running afterwards."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from deployments.demo import samples
from tests.deployments.test_up import stack_processes
from tests.helpers.ports import free_ports

# The whole stack starts and stops: 1-3 minutes on a busy 2-core machine.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


def test_demo_processes_one_sample_and_exits(tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PACKSHOT_", "PREFECT_"))}
    ports = zip(("PREFECT", "WEBHOOK", "DASHBOARD"), free_ports(3), strict=True)
    env |= {f"PACKSHOT_{name}_PORT": str(port) for name, port in ports}
    env |= {"PACKSHOT_HOME": str(home), "PACKSHOT_MASTER_SIZE": "1200", "COLUMNS": "200"}
    command = [str(Path(sys.executable).with_name("packshot")), "demo", "--exit", "--samples", "1"]
    process = subprocess.Popen(
        command,
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        output, _ = process.communicate(timeout=840)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        for pid in stack_processes(home):  # a failed test must not leave a stack behind
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    first = samples()[0].sku
    assert process.returncode == 0, output[-4000:]
    summary = output[output.rindex("Summary") :]
    # The product's defaults: the quality gate may hold a hard sample for review.
    assert first in summary and ("DONE" in summary or "NEEDS_REVIEW" in summary)
    assert not any(other.sku in output for other in samples()[1:])  # only the one sample
    assert f"duplicate delivery for {first}: HTTP 200, same job" in output
    assert "flow runs for it in Prefect: 1" in output
    assert "all DONE" in output
    assert stack_processes(home) == {}

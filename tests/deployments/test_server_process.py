"""The background server's process: on standby until configured or ended, and when it stops."""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

from deployments import server_process


def test_the_server_is_idle_once_unused_for_the_idle_time_with_no_lease_held(
    tmp_path: Path,
) -> None:
    state, lease = tmp_path / "state.json", tmp_path / "lease"
    assert server_process.idle_reason(state, lease, 60) == "its state file is gone"
    state.write_text("{}")
    assert server_process.idle_reason(state, lease, 60) is None  # just renewed
    long_ago = time.time() - 120
    os.utime(state, (long_ago, long_ago))
    with lease.open("a") as held:
        fcntl.flock(held, fcntl.LOCK_SH)  # a command runs: in use however old the renewal
        assert server_process.idle_reason(state, lease, 60) is None
        fcntl.flock(held, fcntl.LOCK_UN)
    assert server_process.idle_reason(state, lease, 60) == "unused for 120 s"


def test_a_process_on_standby_ends_when_released_or_left_without_a_configuration() -> None:
    released = server_process.spawn()
    server_process.release(released)
    assert released.returncode is not None  # ended and reaped, though it was still loading
    unconfigured = server_process.spawn()
    assert unconfigured.stdin is not None
    unconfigured.stdin.close()  # the command ended without a word: nothing to serve
    assert unconfigured.wait(timeout=60) == 0

"""A stand-in for ``prefect.engine`` in the warm-engine tests: reports how it was run.

Run as ``__main__`` it prints one JSON line (its pid, parent, session, working directory,
arguments, ``PREFECT__FLOW_RUN_ID``, niceness, its autogroup's, and whether it is batch work)
to stdout, then does what its first argument says: ``exit:N`` (exit with N), ``sleep`` (wait
for a signal), ``raise``.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from core.priority import autogroup_nice, is_batch


def _report() -> None:
    sys.stdout.write(
        json.dumps(
            {
                "pid": os.getpid(),
                "ppid": os.getppid(),
                "sid": os.getsid(0),
                "cwd": str(Path.cwd()),
                "argv": sys.argv[1:],
                "run_id": os.environ.get("PREFECT__FLOW_RUN_ID"),
                "nice": os.getpriority(os.PRIO_PROCESS, 0),
                "autogroup_nice": autogroup_nice(os.getpid()),
                "batch": is_batch(os.getpid()),
            }
        )
        + "\n"
    )
    sys.stdout.flush()


if __name__ == "__main__":
    _report()
    then = sys.argv[1] if len(sys.argv) > 1 else "exit:0"
    if then.startswith("exit:"):
        sys.exit(int(then.removeprefix("exit:")))
    if then == "sleep":
        time.sleep(60)
    if then == "raise":
        raise RuntimeError("probe failed on purpose")

"""Prefect flows: ``process_image`` (one photo), ``process_batch`` (several), ``backfill``."""

import os

from core.priority import match_autogroup

# A worker starts each flow run as a session of its own: the niceness it inherited from the
# worker only holds against the webhook once its autogroup has it too (core.priority). Done
# here, before the flow's modules are imported: that import is most of a run's start-up CPU.
if os.environ.get("PREFECT__FLOW_RUN_ID"):
    match_autogroup()

"""Prefect's flow- and task-run error lines on the console of ``packshot process``: held back.

Prefect prints a failed run's exception, with its traceback, through the ``prefect.flow_runs``
and ``prefect.task_runs`` loggers. When the job failed on purpose (bad input, a provider that
stayed down) that adds nothing to the one line the CLI prints, so the CLI holds those records
back and prints them only when the failure was unexpected (a bug). Only the console handlers
are filtered: the records still reach the Prefect API, so the Prefect UI keeps every line.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

__all__ = ["HeldRecords", "held_run_errors"]

_RUN_LOGGERS = ("prefect.flow_runs", "prefect.task_runs")


@dataclass
class HeldRecords:
    """The records held back, each with the console handler that would have printed it."""

    records: list[tuple[logging.Handler, logging.LogRecord]] = field(default_factory=list)

    def release(self) -> None:
        """Print the held records now, through the handlers they were meant for.

        Call it after the ``held_run_errors`` block: inside it, the handlers still hold them.
        """
        held, self.records = self.records, []
        for handler, record in held:
            handler.handle(record)


class _Hold(logging.Filter):
    """Keeps a run logger's ERROR records from ``handler``, remembering them in ``held``."""

    def __init__(self, handler: logging.Handler, held: HeldRecords) -> None:
        super().__init__()
        self.handler = handler
        self.held = held

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.ERROR or not record.name.startswith(_RUN_LOGGERS):
            return True
        self.held.records.append((self.handler, record))
        return False


@contextmanager
def held_run_errors(*, hold: bool = True) -> Iterator[HeldRecords]:
    """Hold run-log errors away from the console for the block; release them if it raises.

    Args:
        hold: False shows everything as it happens (``--verbose``).
    """
    held = HeldRecords()
    if not hold:
        yield held
        return
    from prefect.logging.configuration import ensure_logging_setup

    ensure_logging_setup()  # Prefect's console handler must exist to be filtered

    # Run records reach the console through the root logger's handlers (Prefect's logging.yml).
    filters = [_Hold(handler, held) for handler in logging.getLogger().handlers]
    for hold_filter in filters:
        hold_filter.handler.addFilter(hold_filter)
    raised = False
    try:
        yield held
    except BaseException:
        raised = True  # something went wrong outside the job's own bookkeeping: show it all
        raise
    finally:
        for hold_filter in filters:
            hold_filter.handler.removeFilter(hold_filter)
        if raised:
            held.release()

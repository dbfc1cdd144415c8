"""Flow runs started inside a block send no heartbeats of their own."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from prefect.context import SettingsContext, get_settings_context

__all__ = ["without_heartbeats"]


@contextmanager
def without_heartbeats() -> Iterator[None]:
    """Flow runs started in this block (in this context) run no heartbeat thread.

    For runs whose liveness something else vouches for: a batch's photos (the batch run's
    heartbeats speak for them) and a flow called by a command (it ends with the command, which
    reports it). The thread, asleep in one-second steps, would keep each such run from
    returning for up to a second after its last step.

    The setting is changed on a copy of the current settings: Prefect's
    ``temporary_settings`` validates all of them again, 40–65 ms of CPU on the way to the
    run's first step, and no other setting derives from this one.
    """
    current = get_settings_context()
    flows = current.settings.flows.model_copy(update={"heartbeat_frequency": None})
    settings = current.settings.model_copy(update={"flows": flows})
    with SettingsContext(profile=current.profile, settings=settings):
        yield

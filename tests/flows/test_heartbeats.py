"""Flow runs started inside ``without_heartbeats`` run no heartbeat thread; nothing else changes."""

from __future__ import annotations

from prefect.context import SettingsContext, get_settings_context
from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, get_current_settings

from flows.heartbeats import without_heartbeats


def test_only_the_heartbeat_is_off_inside_and_it_is_back_after() -> None:
    # A stack's runs send heartbeats (docs/prefect.md): start from settings that have one.
    outside = get_settings_context()
    before = outside.settings.copy_with_update(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: 30})
    with SettingsContext(profile=outside.profile, settings=before):
        with without_heartbeats():
            inside = get_current_settings()
            assert inside.flows.heartbeat_frequency is None
            # What Prefect's own (validating) override gives: no other setting derives from it.
            expected = before.copy_with_update(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None})
            assert inside.model_dump() == expected.model_dump()
        assert get_current_settings().flows.heartbeat_frequency == 30

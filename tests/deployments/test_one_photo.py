"""What `packshot process` does differently for one photo in its own process: the local model
uses the machine's cores and is loaded before the first step, and the flow runs without
Prefect's heartbeat thread."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from core import settings as settings_module
from core.providers.local import _sessions, default_model_path
from core.providers.registry import load_models, reset_providers
from core.settings import Settings
from deployments.prefect_env import PrefectApi
from deployments.runner import one_photo_settings


@pytest.mark.parametrize(("cpus", "threads"), [(1, 1), (2, 2), (16, 4)])
def test_the_model_uses_the_cores_this_process_may_run_on(
    cpus: int, threads: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(cpus)))
    settings = one_photo_settings()
    assert settings.segmenter_threads == threads
    assert settings.allow_local_sources


def test_configured_segmenter_threads_win(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(8)))
    monkeypatch.setenv("PACKSHOT_SEGMENTER_THREADS", "1")
    settings_module.get_settings.cache_clear()
    assert one_photo_settings().segmenter_threads == 1


def test_load_models_loads_the_local_model_and_leaves_a_broken_one_to_the_step(
    tmp_path: Path,
) -> None:
    pytest.importorskip("onnxruntime")
    model = tmp_path / "model.onnx"
    shutil.copyfile(default_model_path(), model)
    load_models(Settings(segmenter="local", model_path=model))
    assert model.resolve() in _sessions
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not a model")
    reset_providers()  # removers are built once per process
    load_models(Settings(segmenter="local", model_path=broken))  # no error here
    assert broken.resolve() not in _sessions


def test_a_flow_called_here_has_no_heartbeat_thread() -> None:
    from prefect.settings import get_current_settings

    api = PrefectApi(url="http://127.0.0.1:9/api", kind="configured", auth="user:secret")
    with api.flow_here():
        current = get_current_settings()
        assert current.flows.heartbeat_frequency is None
        assert current.api.url == "http://127.0.0.1:9/api"
        assert current.api.auth_string is not None
        assert current.api.auth_string.get_secret_value() == "user:secret"


def test_settings_prepared_during_the_wait_are_not_validated_again_for_the_flow(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from prefect.settings import Settings as PrefectSettings
    from prefect.settings import get_current_settings

    api = PrefectApi(url="http://127.0.0.1:9/api", kind="configured", auth="user:secret")
    api.prepare()  # while a background server boots (deployments.runner)
    validations: list[dict[str, object]] = []
    copy = PrefectSettings.copy_with_update

    def counted(self: PrefectSettings, **updates: Any) -> PrefectSettings:
        validations.append(updates)
        return copy(self, **updates)

    monkeypatch.setattr(PrefectSettings, "copy_with_update", counted)
    with api.flow_here():
        current = get_current_settings()
        assert current.api.url == "http://127.0.0.1:9/api"
        assert current.flows.heartbeat_frequency is None
    assert validations == []


def test_the_warm_up_loads_what_the_flows_first_call_would_load(tmp_path: Path) -> None:
    """In a fresh interpreter (this one has loaded everything): Prefect's run engines and the
    encoder it serializes parameters with are loaded before the command waits for the server."""
    script = """
import json, sys
from core.settings import Settings
from deployments.runner import _warm_up
lazy = ("fastapi.encoders", "prefect.flow_engine", "prefect.task_engine")
assert not any(name in sys.modules for name in lazy), "loaded before the warm-up"
settings = Settings(home=sys.argv[1], segmenter="passthrough")
_warm_up(settings, {"sku": "SKU-1", "image_url": "file:///p.jpg", "theme": "studio"})
print(json.dumps([name for name in lazy if name in sys.modules]))
"""
    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    loaded = json.loads(done.stdout.splitlines()[-1])
    assert loaded == ["fastapi.encoders", "prefect.flow_engine", "prefect.task_engine"]

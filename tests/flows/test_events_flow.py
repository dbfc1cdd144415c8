"""Every terminal status of the flow writes its event, and the run's summary names it."""

from __future__ import annotations

import hashlib
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from core.errors import InputError
from core.events.sender import Sender
from flows.process_image import process_image
from tests.events.helpers import configure, rows
from tests.events.receiver import Receiver, receiving
from tests.helpers.images import jpeg_bytes, product_photo

pytestmark = pytest.mark.xdist_group("prefect")

PHOTO = jpeg_bytes(product_photo())
SHA = hashlib.sha256(PHOTO).hexdigest()


@pytest.fixture
def receiver(monkeypatch: pytest.MonkeyPatch):
    with receiving() as r:
        configure(monkeypatch, notify_url=r.url, notify_allow_private="true", notify_secret="k1")
        yield r


def _summary(sku: str) -> str:
    from prefect.artifacts import Artifact

    artifact = Artifact.get(f"packshot-{sku.lower()}-default")
    assert artifact is not None
    return str(artifact.data)


def test_done_and_failed_runs_send_their_event(photo_url: str, receiver: Receiver) -> None:
    result = process_image(sku="EV-1", image_url=photo_url, sha256=SHA)
    with pytest.raises(InputError):
        process_image(sku="EV-2", image_url=photo_url, sha256="0" * 64)
    from core.settings import get_settings

    settings = get_settings()
    done, failed = rows(settings.database_url)
    assert (done.type, str(done.job_id)) == ("job.done", result["jobId"])
    assert failed.type == "job.failed"
    assert f"`job.done` `{done.event_id}`" in _summary("EV-1")
    assert f"`job.failed` `{failed.event_id}`" in _summary("EV-2")
    sender = Sender(settings)
    try:
        assert sender.run_once() == 2
    finally:
        sender.close()
    by_type = {r.event["type"]: r.event["job"] for r in receiver.received}
    assert by_type["job.failed"]["error"].startswith("InputError")  # type: ignore[index]
    manifest = urlsplit(by_type["job.done"]["manifestUrl"])  # type: ignore[index]
    assert manifest.scheme == "file" and Path(unquote(manifest.path)).is_file()
    assert by_type["job.done"]["costUsd"] == 0.0  # type: ignore[index]

"""The pipeline with the Freepik providers on Prefect's test server; the Freepik limits there.

Freepik is mocked with respx exactly as the contract sheet describes it; the source photo
comes from a real loopback server, and Prefect's own client talks to the test server on
127.0.0.1, so those requests pass through.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest
import respx
from prefect import flow, task
from prefect.client.orchestration import get_client
from prefect.task_runners import ThreadPoolTaskRunner
from pydantic import SecretStr
from sqlmodel import select

from core.clients import freepik as freepik_client
from core.clients.freepik import FreepikClient, new_http_client
from core.db import session_scope
from core.errors import ConfigurationError
from core.pricing import estimate_job_cost
from core.settings import get_settings
from core.tables import Job, JobStep
from flows.process_image import process_image
from tasks import _limits
from tasks._limits import FREEPIK_INFLIGHT, FREEPIK_RATE, ensure_limits, freepik_limits
from tests.helpers.freepik import (
    BASE,
    KEY,
    cutout_png,
    mock_mystic,
    mock_remove_background,
    use_freepik,
)
from tests.helpers.images import jpeg_bytes, product_photo

pytestmark = pytest.mark.xdist_group("prefect")

PHOTO = product_photo()
DATA = jpeg_bytes(PHOTO)
SHA = hashlib.sha256(DATA).hexdigest()


@pytest.fixture
def router() -> Iterator[respx.MockRouter]:
    with respx.mock(assert_all_called=False) as mock:
        mock.route(host="127.0.0.1").pass_through()
        yield mock


@pytest.fixture
def default_limits() -> Iterator[None]:
    """Whatever a test does to the shared limits, the next one finds the defaults."""
    yield
    get_settings.cache_clear()
    ensure_limits(get_settings())


def _rows(job_id: str) -> tuple[Job, dict[str, JobStep]]:
    with session_scope(get_settings().database_url) as session:
        job = session.get(Job, uuid.UUID(job_id))
        assert job is not None
        session.expunge(job)
        rows = session.exec(select(JobStep).where(JobStep.job_id == job.id)).all()
        for row in rows:
            session.expunge(row)
    return job, {f"{r.step}#{r.variant}" if r.variant else r.step: r for r in rows}


def _manifest(packshot_env, sku: str, theme: str = "default") -> tuple[dict, str]:
    path = packshot_env / "store" / f"manifests/{sku}/{SHA}-{theme}.json"
    text = path.read_text()
    return json.loads(text), text


def test_whole_pipeline_with_both_freepik_providers(
    photo_url, router, packshot_env, monkeypatch, caplog
) -> None:
    caplog.set_level(logging.DEBUG)
    use_freepik(monkeypatch, BACKGROUNDS="freepik-mystic")
    post, download = mock_remove_background(router, cutout_png(PHOTO.size))
    submit, poll, image = mock_mystic(router)
    result = process_image(sku="SKU-FP", image_url=photo_url, sha256=SHA)
    assert result["status"] == "DONE"
    assert (post.call_count, download.call_count) == (1, 1)
    assert post.calls.last.request.content.decode().startswith("image_url=http%3A%2F%2F127.0.0.1")
    assert (submit.call_count, poll.call_count, image.call_count) == (2, 4, 2)
    store = packshot_env / "store"
    files = [p.relative_to(store).as_posix() for p in store.rglob("*") if p.is_file()]
    produced = [f for f in files if not f.startswith(("originals/", "manifests/"))]
    assert len(produced) == 24  # cutout, mask, 2 backgrounds, 2 composites, 18 derivatives
    manifest, text = _manifest(packshot_env, "SKU-FP")
    assets = manifest["assets"]
    assert assets["cutout"]["provider"] == "freepik" and assets["mask"]["provider"] == "freepik"
    assert [b["provider"] for b in assets["backgrounds"]] == ["freepik-mystic"] * 2
    assert manifest["metadata"]["totalAssets"] == 24
    assert manifest["metadata"]["cost"] == pytest.approx(0.36)  # 0.12 cutout + 2 × 0.12
    steps = {s["step"]: s for s in manifest["steps"] if not s["variant"]}
    assert steps["remove_background"]["costUsd"] == pytest.approx(0.12)
    assert steps["generate_backgrounds"]["costUsd"] == pytest.approx(0.24)
    assert steps["generate_backgrounds"]["provider"] == "freepik-mystic"
    job, rows = _rows(str(result["jobId"]))
    assert job.cost_usd == pytest.approx(0.36) and job.status == "DONE"
    assert estimate_job_cost(get_settings(), "default") == pytest.approx(job.cost_usd)
    assert rows["remove_background"].attempts == 1
    for leak in (text, caplog.text, json.dumps([r.details for r in rows.values()])):
        assert KEY not in leak


def test_freepik_outage_falls_back_to_the_local_model(
    photo_url, router, packshot_env, monkeypatch
) -> None:
    use_freepik(monkeypatch, SEGMENTER="freepik,local")
    down = httpx.Response(503, json={"message": "Service Unavailable. Please try again later."})
    post, _ = mock_remove_background(router, b"", answers=[down] * 10)
    result = process_image(sku="SKU-FB", image_url=photo_url, sha256=SHA)
    assert result["status"] == "DONE"
    assert post.call_count == 3  # one call and the client's two retries, then the fallback
    job, rows = _rows(str(result["jobId"]))
    step = rows["remove_background"]
    assert (step.state, step.attempts, step.provider, step.cost_usd) == (
        "COMPLETED",
        1,
        "local",
        0.0,
    )
    reason = json.loads(step.details or "{}")["fallback"]
    assert reason == [
        "freepik: ProviderUnavailable: Freepik unavailable (HTTP 503) on POST "
        "/v1/ai/beta/remove-background: Service Unavailable. Please try again later."
    ]
    manifest, _ = _manifest(packshot_env, "SKU-FB")
    assert manifest["assets"]["cutout"]["provider"] == "local"
    steps = {s["step"]: s for s in manifest["steps"] if not s["variant"]}
    assert steps["remove_background"]["details"]["fallback"] == reason
    assert manifest["metadata"]["cost"] == 0.0 and job.cost_usd == 0.0


def test_a_rejected_key_fails_the_job_clearly(photo_url, router, monkeypatch) -> None:
    use_freepik(monkeypatch)
    answers = [httpx.Response(401, json={"message": "Invalid API key"})]
    post, _ = mock_remove_background(router, b"", answers=answers)
    with pytest.raises(RuntimeError, match=r"Freepik rejected the API key \(HTTP 401\)"):
        process_image(sku="SKU-401", image_url=photo_url, sha256=SHA)
    assert post.call_count == 1  # not retried: neither in the client nor by the step
    with session_scope(get_settings().database_url) as session:
        job = session.exec(select(Job).where(Job.sku == "SKU-401")).one()
        assert (job.status, job.error_step, job.error_type) == (
            "FAILED",
            "remove_background",
            "ConfigurationError",
        )
        assert KEY not in (job.error or "")


def test_an_outage_without_fallback_is_retried_by_the_step_then_fails(
    photo_url, router, monkeypatch
) -> None:
    use_freepik(monkeypatch)
    down = httpx.Response(503, json={"message": "Service Unavailable. Please try again later."})
    post, _ = mock_remove_background(router, b"", answers=[down] * 20)
    with pytest.raises(RuntimeError, match=r"HTTP 503"):
        process_image(sku="SKU-503", image_url=photo_url, sha256=SHA)
    assert post.call_count == 12  # (1 call + 2 client retries) × (1 attempt + 3 step retries)
    with session_scope(get_settings().database_url) as session:
        job = session.exec(select(Job).where(Job.sku == "SKU-503")).one()
        step = session.exec(
            select(JobStep).where(JobStep.job_id == job.id, JobStep.step == "remove_background")
        ).one()
        assert (job.status, job.error_type, job.cost_usd) == ("FAILED", "ProviderUnavailable", 0.0)
        assert (step.state, step.attempts, step.provider, step.cost_usd) == ("FAILED", 4, None, 0.0)


# --- the limits on the test server ----------------------------------------------------------


def _read(name: str):
    with get_client(sync_client=True) as client:
        return client.read_global_concurrency_limit_by_name(name)


def test_ensure_limits_creates_corrects_and_is_idempotent(monkeypatch, default_limits) -> None:
    first = ensure_limits()
    assert (first[FREEPIK_RATE].limit, first[FREEPIK_RATE].slot_decay_per_second) == (50, 9.0)
    assert (first[FREEPIK_INFLIGHT].limit, first[FREEPIK_INFLIGHT].slot_decay_per_second) == (
        8,
        0.0,
    )
    again = ensure_limits()
    assert {n: limit.id for n, limit in again.items()} == {
        n: limit.id for n, limit in first.items()
    }
    monkeypatch.setenv("PACKSHOT_FREEPIK_INFLIGHT", "3")
    get_settings.cache_clear()
    with get_client(sync_client=True) as client:
        from prefect.client.schemas.actions import GlobalConcurrencyLimitUpdate

        client.update_global_concurrency_limit(
            FREEPIK_RATE, GlobalConcurrencyLimitUpdate(active=False)
        )
    ensure_limits(update=False)  # lazy creation on first use never changes existing limits
    assert _read(FREEPIK_INFLIGHT).limit == 8 and not _read(FREEPIK_RATE).active
    ensure_limits()  # bring-up corrects and re-activates them
    assert _read(FREEPIK_INFLIGHT).limit == 3 and _read(FREEPIK_RATE).active


CLIENT: list[FreepikClient] = []


@task
def freepik_call(n: int) -> None:
    with freepik_limits():
        CLIENT[0].remove_background(f"https://cdn.example/{n}.jpg")


@flow(task_runner=ThreadPoolTaskRunner(max_workers=6))  # type: ignore[arg-type]
def many_workers(calls: int) -> None:
    freepik_call.map(list(range(calls))).result()


def _recording_endpoint(router: respx.MockRouter, hold_s: float = 0.0):
    times: list[float] = []
    active = {"now": 0, "most": 0}
    lock = threading.Lock()

    def answer(request: httpx.Request) -> httpx.Response:
        with lock:
            times.append(time.monotonic())
            active["now"] += 1
            active["most"] = max(active["most"], active["now"])
        time.sleep(hold_s)
        with lock:
            active["now"] -= 1
        return httpx.Response(200, json={"high_resolution": f"{BASE}/r.png"})

    router.post(f"{BASE}/v1/ai/beta/remove-background").mock(side_effect=answer)
    http = new_http_client(BASE, connect_timeout_s=2, read_timeout_s=5)
    CLIENT[:] = [FreepikClient(http, api_key=SecretStr(KEY), max_retries=0)]
    return times, active


def test_the_rate_limit_paces_requests_across_workers(router, monkeypatch, default_limits) -> None:
    use_freepik(monkeypatch, FREEPIK_RATE_BURST="2", FREEPIK_RATE_PER_SECOND="2")
    ensure_limits()
    times, _ = _recording_endpoint(router)
    many_workers(6)
    assert len(times) == 6
    start, burst, rate = min(times), 2, 2.0
    for k, at in enumerate(sorted(times)):  # leaky bucket: the k-th request waits its turn
        assert at - start >= max(0, k - burst + 1) / rate - 0.3, (k, at - start)


def test_the_inflight_limit_holds_whatever_the_workers(router, monkeypatch, default_limits) -> None:
    use_freepik(monkeypatch, FREEPIK_INFLIGHT="1")
    ensure_limits()
    _, active = _recording_endpoint(router, hold_s=0.3)
    many_workers(3)
    assert active["most"] == 1
    # Control: the same calls without the limits (outside a run) do overlap.
    threads = [threading.Thread(target=freepik_call.fn, args=(n,)) for n in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert active["most"] == 3


def test_a_missing_limit_is_an_error_not_silently_skipped(
    router, monkeypatch, default_limits
) -> None:
    use_freepik(monkeypatch)
    ensure_limits()
    _recording_endpoint(router)
    many_workers(1)  # the process now knows the limits exist and will not create them again
    with get_client(sync_client=True) as client:
        client.delete_global_concurrency_limit_by_name(FREEPIK_INFLIGHT)
    with pytest.raises(ConfigurationError, match="freepik-inflight"):
        many_workers(1)


def test_outside_a_prefect_run_the_wrapper_does_nothing() -> None:
    with freepik_limits():
        assert freepik_client._gate.get() is None
    assert _limits._in_prefect_run() is False


def test_a_run_can_ask_for_freepik_instead_of_the_local_chain(
    photo_url, router, packshot_env, monkeypatch
) -> None:
    # "Redo with Freepik" on the review page: the job was cut out locally, this run uses Freepik.
    use_freepik(monkeypatch, SEGMENTER="local", BACKGROUNDS="gradient")
    first = process_image(sku="SKU-RF", image_url=photo_url, sha256=SHA)
    assert _rows(str(first["jobId"]))[1]["remove_background"].provider == "local"
    post, _ = mock_remove_background(router, cutout_png(PHOTO.size))
    job_id = uuid.UUID(str(first["jobId"]))
    again = process_image(job_id=job_id, force=True, segmenter="freepik")
    assert again["status"] == "DONE" and post.call_count == 1
    step = _rows(str(job_id))[1]["remove_background"]
    assert (step.provider, step.cost_usd) == ("freepik", pytest.approx(0.12))
    with pytest.raises(ConfigurationError, match="unknown segmenter 'magic'"):
        process_image(job_id=job_id, segmenter="magic")

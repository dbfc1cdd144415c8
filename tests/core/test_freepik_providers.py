"""Freepik providers through the real steps (``.fn()`` with a job row), Freepik mocked per contract.

Each case calls the step as the flow does (a failure is recorded on the job by
``jobstate.fail``) and asserts the job's status, the step's attempts, provider and cost.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
from urllib.parse import parse_qs

import httpx
import pytest
import respx
from PIL import Image

from core import jobs
from core.context import JobContext
from core.errors import (
    ConfigurationError,
    ProviderRateLimited,
    ProviderRejected,
    ProviderUnavailable,
)
from core.keys import background_key, original_key
from core.providers import freepik as freepik_providers
from core.providers.freepik import MysticGenerator
from core.schemas import ImageJobSpec
from core.tables import Job, JobStep
from tasks import _runtime, jobstate
from tasks.generate_background import generate_backgrounds
from tasks.remove_background import remove_background
from tests.helpers.clock import FakeClock
from tests.helpers.freepik import (
    BASE,
    KEY,
    TID,
    background_jpeg,
    cutout_png,
    mock_mystic,
    mock_remove_background,
    mystic,
    remove_background_ok,
    use_freepik,
)
from tests.helpers.images import jpeg_bytes, product_photo

PHOTO = product_photo()
DATA = jpeg_bytes(PHOTO)
SHA = hashlib.sha256(DATA).hexdigest()
SOURCE = "https://cdn.3jms.example/media/abc123.jpg"
ENDPOINT = f"{BASE}/v1/ai/beta/remove-background"


@pytest.fixture
def router():
    with respx.mock(assert_all_called=False) as mock:
        yield mock


@pytest.fixture(autouse=True)
def freepik(monkeypatch: pytest.MonkeyPatch) -> None:
    use_freepik(monkeypatch, BACKGROUNDS="freepik-mystic")


def new_job(
    sku: str = "SKU-F", theme: str = "default", source: str = SOURCE
) -> tuple[JobContext, str]:
    spec = ImageJobSpec(sku=sku, image_url=source, sha256=SHA, theme=theme)
    job = jobstate.open_job(spec, flow_run_id=None)
    key = original_key(sku, SHA, "jpg")
    _runtime.store().put(key, DATA, content_type="image/jpeg")
    return job, key


def run(step, job: JobContext, *args):
    """Call the step body as the flow does: a failure lands on the job."""
    try:
        return step.fn(job, *args)
    except Exception as exc:
        jobstate.fail(job.job_id, exc)
        raise


def segment(job: JobContext, key: str):
    return run(remove_background, job, key)


def state(ctx: JobContext) -> tuple[Job, dict[str, JobStep]]:
    with _runtime.db() as session:
        job = session.get(Job, ctx.job_id)
        assert job is not None
        session.expunge(job)
        steps = {row.step: row for row in jobs.list_steps(session, job_id=job.id)}
        for row in steps.values():
            session.expunge(row)
    return job, steps


def assert_failed(
    job_id: JobContext, step: str, error: type[Exception], *, text: str = ""
) -> JobStep:
    job, steps = state(job_id)
    row = steps[step]
    assert job.status == "FAILED" and job.error_step == step
    assert job.error_type == error.__name__ and text in (job.error or "")
    assert (row.state, row.attempts, row.provider, row.cost_usd) == ("FAILED", 1, None, 0.0)
    assert job.cost_usd == 0.0
    return row


# --- remove background ------------------------------------------------------------------------


def test_cutout_and_mask_come_from_freepiks_alpha(router) -> None:
    post, download = mock_remove_background(router, cutout_png(PHOTO.size))
    job, key = new_job()
    ref = segment(job, key)
    request = post.calls.last.request
    assert request.headers["x-freepik-api-key"] == KEY
    assert request.headers["content-type"].startswith("application/x-www-form-urlencoded")
    assert parse_qs(request.content.decode()) == {"image_url": [SOURCE]}
    assert "x-freepik-api-key" not in download.calls.last.request.headers
    record, steps = state(job)
    row = steps["remove_background"]
    assert record.status == "BG_REMOVED" and record.cost_usd == pytest.approx(0.12)
    assert (row.state, row.attempts, row.provider) == ("COMPLETED", 1, "freepik")
    assert row.cost_usd == pytest.approx(0.12)
    details = json.loads(row.details or "{}")
    assert details["requests"] == 2 and details["source"] == SOURCE
    mask = Image.open(io.BytesIO(_runtime.store().get(ref.mask_key)))
    cut = Image.open(io.BytesIO(_runtime.store().get(ref.cutout_key)))
    width, height = PHOTO.size
    assert mask.size == PHOTO.size and {v for v, n in enumerate(mask.histogram()) if n} == {0, 255}
    assert mask.getbbox() == (
        int(width * 0.36),
        int(height * 0.15),
        int(width * 0.64) + 1,
        int(height * 0.85) + 1,
    )
    assert cut.mode == "RGBA" and cut.width < width and cut.height < height  # trimmed


def test_a_smaller_result_of_the_same_shape_is_scaled_to_the_source(router) -> None:
    mock_remove_background(router, cutout_png((320, 240)))
    job, key = new_job()
    ref = segment(job, key)
    mask = Image.open(io.BytesIO(_runtime.store().get(ref.mask_key)))
    assert mask.size == PHOTO.size
    details = json.loads(state(job)[1]["remove_background"].details or "{}")
    assert details["result_size"] == [320, 240]


def test_429_with_retry_after_is_honoured_then_succeeds(router, monkeypatch) -> None:
    clock = FakeClock()  # the wait is asserted, not waited
    built = freepik_providers.new_freepik_client
    monkeypatch.setattr(
        freepik_providers,
        "new_freepik_client",
        lambda settings, **kw: built(settings, sleep=clock.sleep, **kw),
    )
    answers = [httpx.Response(429, headers={"retry-after": "1"}), remove_background_ok()]
    post, _ = mock_remove_background(router, cutout_png(PHOTO.size), answers=answers)
    job, key = new_job()
    segment(job, key)
    assert clock.sleeps == [1.0] and post.call_count == 2
    record, steps = state(job)
    row = steps["remove_background"]
    assert record.status == "BG_REMOVED" and (row.state, row.attempts) == ("COMPLETED", 1)
    assert row.provider == "freepik" and row.cost_usd == pytest.approx(0.12)  # paid once
    assert json.loads(row.details or "{}")["requests"] == 3


def test_429_without_retry_after_backs_off_then_succeeds(router) -> None:
    answers = [httpx.Response(429), httpx.Response(429), remove_background_ok()]
    post, _ = mock_remove_background(router, cutout_png(PHOTO.size), answers=answers)
    job, key = new_job()
    segment(job, key)
    record, steps = state(job)
    assert post.call_count == 3 and record.status == "BG_REMOVED"
    assert steps["remove_background"].cost_usd == pytest.approx(0.12)


def test_429_throughout_fails_the_step_as_rate_limited(router) -> None:
    answers = [httpx.Response(429)] * 3
    post, download = mock_remove_background(router, cutout_png(PHOTO.size), answers=answers)
    job, key = new_job()
    with pytest.raises(ProviderRateLimited):
        segment(job, key)
    assert post.call_count == 3 and download.call_count == 0
    assert_failed(job, "remove_background", ProviderRateLimited, text="HTTP 429")


def test_5xx_then_success(router) -> None:
    answers = [
        httpx.Response(500, json={"message": "Internal Server Error"}),
        httpx.Response(503, json={"message": "Service Unavailable. Please try again later."}),
        remove_background_ok(),
    ]
    post, _ = mock_remove_background(router, cutout_png(PHOTO.size), answers=answers)
    job, key = new_job()
    segment(job, key)
    record, steps = state(job)
    row = steps["remove_background"]
    assert post.call_count == 3 and record.status == "BG_REMOVED"
    assert (row.attempts, row.provider, row.cost_usd) == (1, "freepik", pytest.approx(0.12))


def test_401_is_a_configuration_error_that_names_no_key(router, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    answers = [httpx.Response(401, json={"message": "Invalid API key"})]
    post, _ = mock_remove_background(router, cutout_png(PHOTO.size), answers=answers)
    job, key = new_job()
    with pytest.raises(ConfigurationError):
        segment(job, key)
    assert post.call_count == 1
    row = assert_failed(
        job, "remove_background", ConfigurationError, text="Freepik rejected the API key (HTTP 401)"
    )
    record, _ = state(job)
    assert KEY not in (record.error or "") and KEY not in (row.error or "")
    assert KEY not in caplog.text


def test_401_does_not_fall_back_even_with_a_chain(router, monkeypatch) -> None:
    use_freepik(monkeypatch, SEGMENTER="freepik,local")
    answers = [httpx.Response(401, json={"message": "Missing API key"})]
    mock_remove_background(router, cutout_png(PHOTO.size), answers=answers)
    job, key = new_job()
    with pytest.raises(ConfigurationError):
        segment(job, key)
    assert_failed(job, "remove_background", ConfigurationError, text="HTTP 401")


@pytest.mark.parametrize(
    ("status", "entry"),
    [
        (400, {"name": "image_url", "reason": "Either path or url is required"}),
        (422, {"field": "image_url", "reason": "not reachable"}),
    ],
)
def test_invalid_params_fail_the_step_without_retrying(router, status: int, entry: dict) -> None:
    body = {"message": "Your request parameters didn't validate.", "invalid_params": [entry]}
    answers = [httpx.Response(status, json=body)]
    post, _ = mock_remove_background(router, cutout_png(PHOTO.size), answers=answers)
    job, key = new_job()
    with pytest.raises(ProviderRejected):
        segment(job, key)
    assert post.call_count == 1
    assert_failed(
        job, "remove_background", ProviderRejected, text=f"invalid: image_url ({entry['reason']})"
    )


@pytest.mark.parametrize("status", [403, 404])
def test_an_expired_result_url_fails_as_retryable(router, status: int) -> None:
    post, download = mock_remove_background(router, b"")
    download.mock(return_value=httpx.Response(status))
    job, key = new_job()
    with pytest.raises(ProviderUnavailable):
        segment(job, key)
    assert post.call_count == 1 and download.call_count == 1
    assert_failed(job, "remove_background", ProviderUnavailable, text="expired")


def test_a_timed_out_call_fails_as_retryable(router) -> None:
    post, _ = mock_remove_background(router, cutout_png(PHOTO.size))
    post.mock(side_effect=httpx.ReadTimeout("no answer"))
    job, key = new_job()
    with pytest.raises(ProviderUnavailable):
        segment(job, key)
    assert post.call_count == 1  # the POST may have done paid work: not repeated in-client
    assert_failed(job, "remove_background", ProviderUnavailable, text="did not answer in time")


def test_a_connect_timeout_is_retried_in_the_client(router) -> None:
    answers = [httpx.ConnectTimeout("slow"), remove_background_ok()]
    post, _ = mock_remove_background(router, cutout_png(PHOTO.size), answers=answers)
    job, key = new_job()
    segment(job, key)
    record, steps = state(job)
    assert post.call_count == 2 and record.status == "BG_REMOVED"
    assert steps["remove_background"].provider == "freepik"


def test_malformed_json_fails_as_retryable(router) -> None:
    answers = [httpx.Response(200, text="<html>upstream hiccup</html>")]
    mock_remove_background(router, cutout_png(PHOTO.size), answers=answers)
    job, key = new_job()
    with pytest.raises(ProviderUnavailable):
        segment(job, key)
    assert_failed(job, "remove_background", ProviderUnavailable, text="not JSON")


def test_a_png_without_alpha_is_rejected(router) -> None:
    mock_remove_background(router, cutout_png(PHOTO.size, alpha=False))
    job, key = new_job()
    with pytest.raises(ProviderRejected):
        segment(job, key)
    assert_failed(job, "remove_background", ProviderRejected, text="no transparency")


def test_a_local_file_on_a_local_store_is_refused_clearly(router, tmp_path) -> None:
    path = tmp_path / "photo.jpg"
    path.write_bytes(DATA)
    job, key = new_job(source=str(path))
    with pytest.raises(ProviderRejected):
        segment(job, key)
    assert not router.calls  # nothing was sent
    assert_failed(job, "remove_background", ProviderRejected, text="needs an http(s) URL")


# --- Mystic backgrounds -------------------------------------------------------------------------


def render(job: JobContext) -> list[str]:
    return run(generate_backgrounds, job)


def test_mystic_life_cycle_created_in_progress_completed(router) -> None:
    submit, poll, download = mock_mystic(router)
    job, _ = new_job()
    keys = render(job)
    assert submit.call_count == 2 and poll.call_count == 4 and download.call_count == 2
    body = json.loads(submit.calls[0].request.content)
    assert submit.calls[0].request.headers["content-type"] == "application/json"
    assert body == {
        "prompt": "soft studio backdrop, pale lavender-grey gradient, seamless, no objects",
        "resolution": "2k",
        "aspect_ratio": "square_1_1",
        "model": "realism",
        "fixed_generation": False,
    }
    record, steps = state(job)
    row = steps["generate_backgrounds"]
    assert record.status == "BACKGROUND_READY" and record.cost_usd == pytest.approx(0.24)
    assert (row.state, row.attempts, row.provider) == ("COMPLETED", 1, "freepik-mystic")
    assert row.cost_usd == pytest.approx(0.24)
    details = json.loads(row.details or "{}")
    assert details["by_variant"]["1"]["task_id"] == TID and details["by_variant"]["1"]["polls"] == 2
    assert keys == [background_key("default", "SKU-F", SHA, n) for n in (1, 2)]
    image = Image.open(io.BytesIO(_runtime.store().get(keys[0])))
    assert image.size == (1600, 1600) and image.format == "JPEG"


def test_mystic_failed_task_fails_the_step(router) -> None:
    failed = mystic("FAILED", error="content filter")
    submit, poll, download = mock_mystic(router, polls=[mystic("IN_PROGRESS"), failed])
    job, _ = new_job()
    with pytest.raises(ProviderRejected):
        render(job)
    assert submit.call_count == 1 and poll.call_count == 2 and download.call_count == 0
    assert_failed(job, "generate_backgrounds", ProviderRejected, text="FAILED: content filter")


def test_mystic_answers_without_the_data_wrapper(router) -> None:
    bare = {
        "task_id": TID,
        "task_status": "COMPLETED",
        "generated": ["https://ai-statics.freepik.com/completed_task_image.jpg"],
    }
    submit, _, _ = mock_mystic(router, polls=[httpx.Response(200, json=bare)])
    submit.mock(
        return_value=httpx.Response(200, json={"task_id": TID, "task_status": "IN_PROGRESS"})
    )
    job, _ = new_job()
    render(job)
    record, steps = state(job)
    assert record.status == "BACKGROUND_READY" and steps[
        "generate_backgrounds"
    ].cost_usd == pytest.approx(0.24)


def test_mystic_task_that_never_completes_hits_the_deadline(router, monkeypatch) -> None:
    use_freepik(
        monkeypatch,
        BACKGROUNDS="freepik-mystic",
        FREEPIK_MYSTIC_DEADLINE_S="1",
        FREEPIK_POLL_INTERVAL_S="0.25",
        FREEPIK_POLL_MAX_INTERVAL_S="0.5",
    )
    clock = FakeClock()  # polls on a clock that only moves when the generator waits
    defaults = MysticGenerator.__init__.__kwdefaults__
    monkeypatch.setitem(defaults, "sleep", clock.sleep)
    monkeypatch.setitem(defaults, "clock", clock.monotonic)
    _, poll, download = mock_mystic(router, polls=[mystic("IN_PROGRESS")])
    job, _ = new_job()
    with pytest.raises(ProviderUnavailable):
        render(job)
    # Waits grow ×1.5 up to 0.5 s; the last one ends exactly at the deadline, then it gives up.
    assert clock.sleeps == [0.25, 0.375, 0.375]
    assert poll.call_count == 3 and download.call_count == 0
    assert_failed(
        job, "generate_backgrounds", ProviderUnavailable, text="still IN_PROGRESS after 1 s"
    )


def test_mystic_invalid_params_are_rejected(router) -> None:
    submit, _, _ = mock_mystic(router)
    body = {
        "message": "Your request parameters didn't validate.",
        "invalid_params": [{"field": "aspect_ratio", "reason": "unsupported"}],
    }
    submit.mock(return_value=httpx.Response(400, json=body))
    job, _ = new_job()
    with pytest.raises(ProviderRejected):
        render(job)
    assert submit.call_count == 1
    assert_failed(job, "generate_backgrounds", ProviderRejected, text="aspect_ratio (unsupported)")


def test_mystic_429_then_success(router) -> None:
    submit, _, _ = mock_mystic(router)
    submit.mock(side_effect=[httpx.Response(429), mystic("CREATED"), mystic("CREATED")])
    job, _ = new_job()
    render(job)
    record, steps = state(job)
    assert submit.call_count == 3 and record.status == "BACKGROUND_READY"
    assert steps["generate_backgrounds"].cost_usd == pytest.approx(0.24)  # two images paid


def test_mystic_401_is_a_configuration_error(router) -> None:
    submit, _, _ = mock_mystic(router)
    submit.mock(return_value=httpx.Response(401, json={"message": "Invalid API key"}))
    job, _ = new_job()
    with pytest.raises(ConfigurationError):
        render(job)
    assert_failed(job, "generate_backgrounds", ConfigurationError, text="HTTP 401")


def test_white_never_calls_mystic(router) -> None:
    job, _ = new_job(theme="white")
    render(job)
    assert not router.calls
    record, steps = state(job)
    row = steps["generate_backgrounds"]
    assert (record.status, row.provider, row.cost_usd) == ("BACKGROUND_READY", "gradient", 0.0)
    reason = json.loads(row.details or "{}")["by_variant"]["1"]["fallback"]
    assert "no prompt" in reason and "rendered locally" in reason


def test_a_theme_that_forbids_ai_stays_local_even_with_prompts(
    router, monkeypatch, tmp_path
) -> None:
    themes = tmp_path / "themes.json"
    variant = {"prompt": "marble podium", "stops": [[0, "#FFFFFF"], [1, "#EEEEEE"]]}
    theme = {"name": "strict", "variants": [variant], "ai_allowed": False}
    themes.write_text(json.dumps({"themes": [theme]}))
    use_freepik(monkeypatch, BACKGROUNDS="freepik-mystic", THEMES_FILE=str(themes))
    job, _ = new_job(theme="strict")
    render(job)
    assert not router.calls
    _, steps = state(job)
    row = steps["generate_backgrounds"]
    assert (row.provider, row.cost_usd) == ("gradient", 0.0)
    assert "rendered locally" in json.loads(row.details or "{}")["by_variant"]["1"]["fallback"]


def test_mixed_theme_records_each_variants_provider(router, monkeypatch, tmp_path) -> None:
    themes = tmp_path / "themes.json"
    variants = [
        {
            "prompt": "wide warm studio",
            "aspect_ratio": "widescreen_16_9",
            "resolution": "4k",
            "stops": [[0, "#FFFFFF"], [1, "#EEEEEE"]],
        },
        {"stops": [[0, "#FFFFFF"], [1, "#DDDDDD"]]},
    ]
    themes.write_text(json.dumps({"themes": [{"name": "mixed", "variants": variants}]}))
    use_freepik(monkeypatch, BACKGROUNDS="freepik-mystic", THEMES_FILE=str(themes))
    submit, _, _ = mock_mystic(router, image=background_jpeg((2752, 1536)))
    job, _ = new_job(theme="mixed")
    keys = render(job)
    assert submit.call_count == 1
    assert json.loads(submit.calls[0].request.content)["resolution"] == "4k"
    record, steps = state(job)
    row = steps["generate_backgrounds"]
    assert record.cost_usd == pytest.approx(0.39)
    assert row.provider == "freepik-mystic+gradient" and row.cost_usd == pytest.approx(0.39)
    by_variant = json.loads(row.details or "{}")["by_variant"]
    assert (
        by_variant["1"]["provider"] == "freepik-mystic"
        and by_variant["2"]["provider"] == "gradient"
    )
    wide = Image.open(io.BytesIO(_runtime.store().get(keys[0])))
    assert wide.size == (1600, 1600)  # centre-cropped to the square


# --- registry ----------------------------------------------------------------------------------


def test_start_up_check_wants_the_key_when_freepik_is_used(monkeypatch) -> None:
    from core.providers.registry import check_providers
    from core.settings import get_settings

    check_providers(get_settings())  # key set: fine
    monkeypatch.delenv("PACKSHOT_FREEPIK_API_KEY")
    for segmenter, backgrounds in (("freepik,local", "gradient"), ("local", "freepik-mystic")):
        use_freepik(monkeypatch, SEGMENTER=segmenter, BACKGROUNDS=backgrounds, FREEPIK_API_KEY="")
        with pytest.raises(ConfigurationError, match="PACKSHOT_FREEPIK_API_KEY is not set"):
            check_providers(get_settings())
    use_freepik(monkeypatch, SEGMENTER="local", BACKGROUNDS="gradient", FREEPIK_API_KEY="")
    check_providers(get_settings())  # no Freepik provider: no key needed


def test_the_registry_builds_the_freepik_providers(monkeypatch) -> None:
    from core.providers.freepik import FreepikRemover, MysticGenerator
    from core.providers.registry import ChainRemover, new_generator, new_remover
    from core.settings import get_settings

    use_freepik(monkeypatch, SEGMENTER="freepik,local", BACKGROUNDS="freepik-mystic")
    chain = new_remover(get_settings())
    assert isinstance(chain, ChainRemover) and chain.name == "freepik,local"
    assert isinstance(chain.removers[0], FreepikRemover)
    generator = new_generator(get_settings())
    assert isinstance(generator, MysticGenerator) and generator.prices["mystic-4k"] == 0.39
    assert KEY not in repr(chain.removers[0].client) and KEY not in repr(get_settings())


# --- escalation: local first, Freepik only when the local cut-out is not good enough ----------


def test_a_local_cutout_that_fails_the_mask_checks_is_redone_by_freepik_once(
    router, monkeypatch
) -> None:
    # The drawn bottle covers about a fifth of the photo: demanding half makes the local
    # cut-out fail `foreground_min`, as a bad cut-out would.
    use_freepik(monkeypatch, SEGMENTER="local,freepik", QUALITY_FOREGROUND_MIN="0.5")
    post, _ = mock_remove_background(router, cutout_png(PHOTO.size))
    job, key = new_job()
    segment(job, key)
    record, steps = state(job)
    row = steps["remove_background"]
    details = json.loads(row.details or "{}")
    assert (row.state, row.provider) == ("COMPLETED", "freepik")
    assert row.cost_usd == pytest.approx(0.12) and record.cost_usd == pytest.approx(0.12)
    [escalation] = details["escalated"]
    assert escalation["from"] == "local" and "at least 50.0%" in escalation["reason"]
    assert post.call_count == 1
    segment(job, key)  # a replay reuses the stored cut-out: Freepik is not paid twice
    assert post.call_count == 1
    assert state(job)[1]["remove_background"].state == "SKIPPED"


def test_a_good_local_cutout_never_calls_freepik(router, monkeypatch) -> None:
    use_freepik(monkeypatch, SEGMENTER="local,freepik")
    post, _ = mock_remove_background(router, cutout_png(PHOTO.size))
    job, key = new_job()
    segment(job, key)
    row = state(job)[1]["remove_background"]
    assert (row.provider, row.cost_usd, post.call_count) == ("local", 0.0, 0)
    assert "escalated" not in json.loads(row.details or "{}")


def test_when_freepik_fails_after_escalating_the_local_cutout_is_kept(router, monkeypatch) -> None:
    use_freepik(monkeypatch, SEGMENTER="local,freepik", QUALITY_FOREGROUND_MIN="0.5")
    answers = [httpx.Response(400, json={"message": "image_url not reachable"})]
    mock_remove_background(router, cutout_png(PHOTO.size), answers=answers)
    job, key = new_job()
    segment(job, key)
    row = state(job)[1]["remove_background"]
    details = json.loads(row.details or "{}")
    assert (row.state, row.provider, row.cost_usd) == ("COMPLETED", "local", 0.0)
    assert details["escalated"][0]["from"] == "local"
    assert details["fallback"][0].startswith("freepik: ProviderRejected")

"""The public step decorator: tracking, and the retry policy read from the settings when called."""

from __future__ import annotations

import inspect
from collections.abc import Iterator

import pytest
from prefect import flow
from sqlmodel import select

from core.context import JobContext
from core.errors import InputError, ProviderUnavailable
from core.schemas import ImageJobSpec
from core.settings import get_settings
from core.tables import JobStep, Step
from tasks import _runtime, jobstate
from tasks.step import StepRecord, step

pytestmark = pytest.mark.xdist_group("prefect")

failures: list[BaseException] = []


@step(Step.MANIFEST, timeout_s=30)
def flaky(ctx: JobContext, record: StepRecord, label: str) -> str:
    """Fails with the queued errors first, then succeeds."""
    record.provider = "test"
    if failures:
        raise failures.pop(0)
    return f"{ctx.sku}:{label}"


@flow
def one_step(ctx: JobContext) -> str:
    return flaky(ctx, "done")


@pytest.fixture
def ctx() -> Iterator[JobContext]:
    spec = ImageJobSpec(sku="SKU-STEP", image_url="https://cdn.example/a.jpg", sha256="a" * 64)
    yield jobstate.open_job(spec, flow_run_id=None)
    failures.clear()


def _row(ctx: JobContext) -> JobStep:
    with _runtime.db() as session:
        query = select(JobStep).where(JobStep.job_id == ctx.job_id, JobStep.step == "manifest")
        row = session.exec(query).one()
        session.expunge(row)
        return row


def _retries(monkeypatch: pytest.MonkeyPatch, n: int) -> None:
    monkeypatch.setenv("PACKSHOT_STEP_RETRIES", str(n))
    get_settings.cache_clear()


def test_callers_pass_the_context_and_the_arguments_only() -> None:
    assert list(inspect.signature(flaky.fn).parameters) == ["ctx", "label"]
    assert flaky.name == "manifest" and flaky.timeout_seconds == 30


def test_transient_failures_retry_as_often_as_the_settings_say(ctx, monkeypatch) -> None:
    _retries(monkeypatch, 2)
    failures.extend([ProviderUnavailable("busy"), ProviderUnavailable("busy")])
    assert one_step(ctx) == "SKU-STEP:done"
    row = _row(ctx)
    assert (row.state, row.attempts, row.provider) == ("COMPLETED", 3, "test")


def test_a_changed_setting_applies_without_reimporting_the_step(ctx, monkeypatch) -> None:
    _retries(monkeypatch, 1)
    failures.extend([ProviderUnavailable("busy"), ProviderUnavailable("still busy")])
    with pytest.raises(ProviderUnavailable, match="still busy"):
        one_step(ctx)
    row = _row(ctx)
    assert (row.state, row.attempts) == ("FAILED", 2)
    assert flaky.configured().retries == 1


def test_bad_input_is_never_retried(ctx, monkeypatch) -> None:
    _retries(monkeypatch, 3)
    failures.append(InputError("not an image"))
    with pytest.raises(InputError):
        one_step(ctx)
    row = _row(ctx)
    assert (row.state, row.attempts) == ("FAILED", 1)
    assert row.error == "InputError: not an image"


def test_a_body_without_ctx_and_record_is_refused() -> None:
    with pytest.raises(TypeError, match=r"must take \(ctx, record, \.\.\.\)"):

        @step(Step.PUBLISH)
        def wrong(job_id: str, record: StepRecord) -> None:
            """Not a step body."""

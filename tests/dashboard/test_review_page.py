"""The Review page: held jobs with their failed checks and pictures; approve, reject, redo.

Decisions go through ``core.review`` into the real job table; publishing goes through the real
``flows.trigger.after_decision`` with only Prefect's ``arun_deployment`` replaced (as in
test_rerun.py), behind a local HTTP server answering the Prefect API's health check.
"""

from __future__ import annotations

import io
import uuid

import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from core.schemas import QualityCheck, QualityReport
from core.settings import Settings, get_settings
from core.storage import ObjectStore
from core.tables import JobStatus
from dashboard import signin
from dashboard.images import mask_overlay
from flows.trigger import PROCESS_IMAGE_DEPLOYMENT
from tests.dashboard import hostile
from tests.dashboard.rendered import assert_inert, shown
from tests.dashboard.seed import seed_job, stored_job
from tests.helpers.clock import FakeClock

REVIEW = "app_pages/review.py"
PASSWORD = "a-long-dashboard-password"
LEFTOVER = "the cut-out covers 87% of the photo (at most 60%)"
REPORT = QualityReport(
    verdict="review",
    score=0.75,
    checks=[
        QualityCheck(
            name="foreground_max", value=0.87, threshold=0.6, passed=False, detail=LEFTOVER
        ),
        QualityCheck(name="touches_frame", value=0.0, threshold=0.05, passed=True, detail="ok"),
    ],
)


def _held(settings: Settings, store: ObjectStore, sku: str, report: QualityReport = REPORT):
    return seed_job(settings.database_url, store, sku=sku, held=report)


def _password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PACKSHOT_DASHBOARD_PASSWORD", PASSWORD)
    get_settings.cache_clear()


def _review_page(at: AppTest) -> AppTest:
    at.switch_page(REVIEW).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _sign_in(at: AppTest, name: str = "alice", password: str = PASSWORD) -> AppTest:
    at.sidebar.text_input(key=signin.NAME_KEY).input(name)
    at.sidebar.text_input(key=signin.PASSWORD_KEY).input(password)
    return at.sidebar.button(key=signin.SIGN_IN_KEY).click().run()


def _titles(at: AppTest) -> list[str]:
    return [shown(link.proto.label) for link in at.get("page_link")]


def _markdown(at: AppTest) -> str:
    return "\n".join(shown(md.value) for md in at.markdown)


@pytest.fixture
def held_pair(settings, store, done_job) -> tuple[uuid.UUID, uuid.UUID]:
    """Two held jobs, the first held earlier, beside a DONE one that must not be listed."""
    first = _held(settings, store, "VASE-1")
    second = _held(settings, store, "CUP-2")
    return first, second


def test_lists_held_jobs_oldest_first_with_failed_checks_and_pictures(app, held_pair):
    at = _review_page(app())
    assert _titles(at) == ["VASE-1 · default", "CUP-2 · default"]
    text = _markdown(at)
    assert text.count(f"{LEFTOVER} (foreground_max: 0.87, limit 0.6)") == 2
    assert "touches_frame" not in text, "only the failed checks are listed"
    # Original, cut-out, mask over the photo, two composites: five pictures per job.
    captions = [shown(caption) for node in at.get("image") for caption in node.captions]
    per_job = ["Original", "Cut-out", "Mask over the photo (tinted = product)"]
    assert captions == [*per_job, "Composite 1", "Composite 2"] * 2


def test_the_mask_overlay_tints_exactly_the_product():
    photo, mask = Image.new("RGB", (40, 20), "white"), Image.new("L", (40, 20), 0)
    mask.paste(255, (0, 0, 20, 20))  # the left half is product
    shown = mask_overlay(_png(photo), _png(mask), max_side=40, strength=0.5)
    image = Image.open(io.BytesIO(shown.data)).convert("RGB")
    product, background = image.getpixel((5, 10)), image.getpixel((35, 10))
    assert background == (255, 255, 255) or min(background) > 245
    assert product[1] < 150 and product[0] > 220, "magenta over white"
    with pytest.raises(ValueError, match="strength"):
        mask_overlay(_png(photo), _png(mask), max_side=40, strength=1.5)


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def test_values_from_data_stay_text(app, settings, store):
    checks = [QualityCheck(name=":red[x]", value=1, threshold=0, passed=False, detail=hostile.SKU)]
    _held(settings, store, hostile.SKU, QualityReport(verdict="review", score=0, checks=checks))
    at = _review_page(app())
    line = next(md.value for md in at.markdown if "limit" in md.value)
    assert hostile.SKU in shown(line)
    assert_inert(line, hostile.RAW)


def test_approving_records_the_operator_and_starts_publishing(
    app, held_pair, prefect_api, deployments, monkeypatch
):
    _password(monkeypatch)
    at = _review_page(app())
    assert at.button(key=f"review-approve-{held_pair[0]}").disabled, "nobody signed in yet"
    _sign_in(at)
    at.button(key=f"review-approve-{held_pair[0]}").click().run()

    job = stored_job(get_settings().database_url, held_pair[0])
    assert (job.review_decision, job.review_by) == ("approved", "alice")
    assert job.review_at is not None and job.status == JobStatus.NEEDS_REVIEW
    [run] = deployments.runs
    assert run["name"] == PROCESS_IMAGE_DEPLOYMENT
    assert run["parameters"] == {"sku": "VASE-1", "theme": "default", "job_id": str(job.id)}
    assert f"Approved; publishing in flow run {run['id']}" in shown(at.success[0].value)
    assert _titles(at) == ["CUP-2 · default"], "the approved job left the queue"


def test_approval_waits_while_prefect_is_unreachable(app, held_pair, deployments, monkeypatch):
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    get_settings.cache_clear()
    at = _review_page(app())
    at.button(key=f"review-approve-{held_pair[0]}").click().run()
    assert "Not approved: PREFECT_API_URL is not set" in shown(at.error[0].value)
    assert (
        stored_job(get_settings().database_url, held_pair[0]).review_decision is None
        and deployments.runs == []
    )
    assert len(_titles(at)) == 2, "still waiting"


def test_a_rejection_needs_a_reason(app, held_pair, deployments):
    at = _review_page(app())
    job_id = held_pair[1]
    at.button(key=f"review-reject-{job_id}").click().run()
    assert "a rejection needs a reason" in shown(at.error[0].value)
    assert stored_job(get_settings().database_url, job_id).status == JobStatus.NEEDS_REVIEW

    at.text_input(key=f"review-reason-{job_id}").input("boardwalk left beside the wheel")
    at.button(key=f"review-reject-{job_id}").click().run()
    job = stored_job(get_settings().database_url, job_id)
    assert (job.status, job.review_decision) == (JobStatus.REJECTED, "rejected")
    assert job.review_reason == "boardwalk left beside the wheel"
    assert job.review_by == signin.OPEN_OPERATOR, "embedded, nothing configured: open"
    assert deployments.runs == [], "nothing is published"
    assert _titles(at) == ["VASE-1 · default"]


def test_several_jobs_approved_at_once(app, settings, store, held_pair, prefect_api, deployments):
    third = _held(settings, store, "BOWL-3")
    at = _review_page(app())
    assert at.button(key="review-approve-selected").disabled, "nothing ticked"
    at.checkbox(key=f"review-pick-{held_pair[0]}").check().run()
    at.checkbox(key=f"review-pick-{third}").check().run()
    at.button(key="review-approve-selected").click().run()

    assert {run["parameters"]["sku"] for run in deployments.runs} == {"VASE-1", "BOWL-3"}
    assert [
        stored_job(get_settings().database_url, j).review_decision
        for j in (held_pair[0], held_pair[1], third)
    ] == [
        "approved",
        None,
        "approved",
    ]
    assert len(at.success) == 2 and _titles(at) == ["CUP-2 · default"]


def test_redo_runs_every_step_again(app, held_pair, prefect_api, deployments):
    at = _review_page(app())
    at.button(key=f"review-redo-{held_pair[0]}").click().run()
    [run] = deployments.runs
    assert run["parameters"]["force"] is True and run["parameters"]["job_id"] == str(held_pair[0])
    assert stored_job(get_settings().database_url, held_pair[0]).review_decision is None, (
        "redo decides nothing"
    )


def test_redo_with_freepik_is_offered_only_when_freepik_can_be_used(
    app, held_pair, prefect_api, deployments, monkeypatch
):
    key = f"review-redo-freepik-{held_pair[0]}"
    assert key not in [b.key for b in _review_page(app()).button]
    monkeypatch.setenv("PACKSHOT_FREEPIK_API_KEY", "fpk-test-key-not-real-0001")
    get_settings.cache_clear()
    at = _review_page(app())
    at.button(key=key).click().run()
    [run] = deployments.runs
    assert run["parameters"]["segmenter"] == "freepik" and run["parameters"]["force"] is True
    assert run["idempotency_key"].endswith(":freepik")  # never merged with a plain Redo


def test_the_overview_links_the_waiting_jobs(app, held_pair):
    at = app()
    assert "2 waiting for review" in _titles(at)


def test_a_wrong_password_is_refused_after_a_pause(app, held_pair, monkeypatch):
    _password(monkeypatch)
    clock = FakeClock()
    monkeypatch.setattr(signin, "_sleep", clock.sleep)
    at = _sign_in(_review_page(app()), password="not-the-password")
    assert "Wrong password" in shown(at.sidebar.error[0].value)
    assert clock.sleeps == [signin.WRONG_PASSWORD_DELAY_S]
    assert at.button(key=f"review-approve-{held_pair[0]}").disabled
    assert at.session_state[signin.PASSWORD_KEY] == "", "the attempt is not kept"
    page = " ".join(md.value for md in [*at.markdown, *at.sidebar.markdown, *at.caption])
    assert "not-the-password" not in page and PASSWORD not in page

    _sign_in(at)
    assert clock.sleeps == [signin.WRONG_PASSWORD_DELAY_S], "no pause for the right one"
    assert not at.button(key=f"review-approve-{held_pair[0]}").disabled
    assert "Signed in as alice" in shown(at.sidebar.caption[-1].value)


def test_a_name_is_required_to_sign_in(app, held_pair, monkeypatch):
    _password(monkeypatch)
    at = _sign_in(_review_page(app()), name="  ")
    assert "Enter your name" in shown(at.sidebar.error[0].value)
    assert at.button(key=f"review-approve-{held_pair[0]}").disabled


def test_every_other_action_needs_the_sign_in_too(app, done_job, prefect_api, monkeypatch):
    _password(monkeypatch)
    at = app(job=str(done_job))
    rerun = at.button(key="rerun-open")
    assert rerun.disabled and "Sign in first" in rerun.help
    _sign_in(at)
    assert not at.button(key="rerun-open").disabled


def test_with_oidc_configured_the_sidebar_offers_streamlit_sign_in(app, held_pair, monkeypatch):
    _password(monkeypatch)  # [auth] wins over the password
    at = app()
    at.secrets["auth"] = {
        "redirect_uri": "http://localhost:8501/oauth2callback",
        "cookie_secret": "a-cookie-secret",
        "client_id": "packshot",
        "client_secret": "s",
        "server_metadata_url": "https://id.example/.well-known/openid-configuration",
    }
    at = _review_page(at)
    assert [b.label for b in at.sidebar.button] == ["Sign in"]
    assert not [t for t in at.sidebar.text_input if t.key == signin.PASSWORD_KEY]
    assert at.button(key=f"review-approve-{held_pair[0]}").disabled


def test_production_without_a_sign_in_keeps_actions_off(app, held_pair, monkeypatch):
    monkeypatch.setenv("PACKSHOT_PROFILE", "production")
    get_settings.cache_clear()
    at = _review_page(app())
    approve = at.button(key=f"review-approve-{held_pair[0]}")
    assert approve.disabled and "PACKSHOT_DASHBOARD_PASSWORD" in approve.help
    assert "PACKSHOT_DASHBOARD_PASSWORD" in shown(at.sidebar.warning[0].value)

"""Review page: held jobs oldest first, what failed and the pictures; approve, reject, redo."""

from __future__ import annotations

from collections.abc import Callable

import streamlit as st

from core.schemas import QualityReport
from core.settings import get_settings
from dashboard import objects, queries, review_queue, signin
from dashboard.actions import flow_run_url
from dashboard.components import JOB_PAGE, data_error
from dashboard.fmt import ago
from dashboard.images import Preview
from dashboard.markup import md_code, md_link, md_text
from dashboard.models import AssetRow
from dashboard.objects import StoreRef, Unavailable
from dashboard.review_queue import HeldJob, Outcome

PAGE_SIZE = 10
SIDE = 240
OUTCOMES_KEY = "review-outcomes"
PICK_KEY = "review-pick-{id}"
REASON_KEY = "review-reason-{id}"
APPROVE_KEY = "review-approve-{id}"
REJECT_KEY = "review-reject-{id}"
REDO_KEY = "review-redo-{id}"
REDO_FREEPIK_KEY = "review-redo-freepik-{id}"
APPROVE_SELECTED_KEY = "review-approve-selected"


def _finish(outcomes: list[Outcome]) -> None:
    """Keep what happened for the redrawn page (the decided jobs have left the queue)."""
    st.session_state[OUTCOMES_KEY] = outcomes
    st.rerun()


def _outcomes() -> None:
    settings = get_settings()
    for outcome in st.session_state.get(OUTCOMES_KEY, []):
        text = f"**{md_text(outcome.sku)}** {md_code(outcome.job_id)}: {md_text(outcome.text)}"
        if outcome.flow_run_id:
            link = md_link("open in Prefect", flow_run_url(settings, outcome.flow_run_id))
            text += f" in flow run {md_code(outcome.flow_run_id)} · {link}"
        if outcome.ok:
            st.success(text, icon=":material/check_circle:")
        else:
            st.error(text, icon=":material/error:")


def _checks(quality: QualityReport | None) -> None:
    failed = quality.failed() if quality else []
    if not failed:
        st.caption("No check failed: every job waits for a person (PACKSHOT_REVIEW=always).")
        return
    lines = [
        f"- {md_text(check.detail)} ({md_code(check.name)}: {check.value:.3g}, "
        f"limit {check.threshold:.3g})"
        for check in failed
    ]
    st.markdown("\n".join(lines))


def _picture(load: Callable[[], Preview], caption: str, alt: str) -> None:
    try:
        shown = load()
    except Unavailable as exc:
        st.warning(md_text(exc), icon=":material/broken_image:")
        return
    st.image(shown.data, caption=md_text(caption), output_format=shown.pillow_format, alt=alt)


def _first(item: HeldJob, kind: str) -> AssetRow | None:
    found = item.detail.assets_of(kind)
    return found[0] if found else None


def _thumbnail(ref: StoreRef, asset: AssetRow | None, caption: str) -> None:
    if asset is None:
        st.caption(f"No {caption.lower()} stored.")
        return
    _picture(lambda: objects.thumbnail(ref, asset.key, asset.sha256, SIDE), caption, asset.name)


def _overlay(ref: StoreRef, original: AssetRow | None, mask: AssetRow | None) -> None:
    if original is None or mask is None:
        st.caption("No mask to show.")
        return
    photo, tint = (original.key, original.sha256), (mask.key, mask.sha256)
    _picture(
        lambda: objects.overlay(ref, photo, tint, SIDE),
        "Mask over the photo (tinted = product)",
        f"mask over {original.name}",
    )


def _pictures(item: HeldJob, ref: StoreRef) -> None:
    """Original, cut-out on a checkerboard, mask over the photo, then each composite."""
    original, cutout, mask = (_first(item, kind) for kind in ("original", "cutout", "mask"))
    composites = item.detail.assets_of("composite")
    cells = st.columns(3 + max(1, len(composites)))
    with cells[0]:
        _thumbnail(ref, original, "Original")
    with cells[1]:
        _thumbnail(ref, cutout, "Cut-out")
    with cells[2]:
        _overlay(ref, original, mask)
    for cell, asset in zip(cells[3:], composites, strict=False):
        with cell:
            _thumbnail(ref, asset, f"Composite {asset.variant or ''}".strip())


def _actions(item: HeldJob, by: str | None, blocked: str | None) -> None:
    job = item.detail.job
    url, settings = get_settings().database_url, get_settings()
    approve, redo, reason_cell, reject = st.columns([1, 1, 3, 1], vertical_alignment="bottom")
    off = blocked is not None or by is None
    if approve.button(
        "Approve",
        key=APPROVE_KEY.format(id=job.id),
        type="primary",
        icon=":material/check:",
        disabled=off,
        help=blocked or "Publish this job: starts the run that publishes it.",
    ):
        _finish([review_queue.approve(url, item, by=by or "", settings=settings)])
    if redo.button(
        "Redo",
        key=REDO_KEY.format(id=job.id),
        icon=":material/replay:",
        disabled=off,
        help=blocked or "Run every step again; the new result is judged again.",
    ):
        _finish([review_queue.redo(item, by=by or "", settings=settings)])
    # Only when Freepik can be used: the run checks the key before any work.
    if settings.freepik_api_key is not None and redo.button(
        "Redo with Freepik",
        key=REDO_FREEPIK_KEY.format(id=job.id),
        icon=":material/auto_fix_high:",
        disabled=off,
        help=blocked or "Cut the product out again with Freepik (paid), then judge it again.",
    ):
        _finish([review_queue.redo(item, by=by or "", settings=settings, segmenter="freepik")])
    reason = reason_cell.text_input(
        "Reason for rejecting",
        key=REASON_KEY.format(id=job.id),
        placeholder="what is wrong (required to reject)",
        max_chars=2000,
        disabled=off,
    )
    if reject.button(
        "Reject",
        key=REJECT_KEY.format(id=job.id),
        icon=":material/block:",
        disabled=off,
        help=blocked or "End the job REJECTED: nothing is published. Needs a reason.",
    ):
        if not reason.strip():
            _finish([Outcome(job.id, job.sku, False, "Not rejected: a rejection needs a reason.")])
        _finish([review_queue.reject(url, item, by=by or "", reason=reason, settings=settings)])


def _held_job(item: HeldJob, ref: StoreRef, by: str | None, blocked: str | None) -> None:
    job = item.detail.job
    with st.container(border=True):
        pick, title, facts = st.columns([0.4, 5, 3], vertical_alignment="center")
        pick.checkbox(
            "Select",
            key=PICK_KEY.format(id=job.id),
            label_visibility="collapsed",
            disabled=blocked is not None,
        )
        title.page_link(
            JOB_PAGE,
            label=f"{md_text(job.sku)} · {md_text(job.theme)}",
            query_params={"job": str(job.id)},
            icon=":material/image:",
        )
        score = f" · score {item.quality.score:.2f}" if item.quality else ""
        facts.caption(f"held {ago(item.held_at)}{score}")
        _checks(item.quality)
        _pictures(item, ref)
        _actions(item, by, blocked)


def _approve_selected(queue: review_queue.Queue, by: str | None, blocked: str | None) -> None:
    picked = [j for j in queue.jobs if st.session_state.get(PICK_KEY.format(id=j.detail.job.id))]
    if st.button(
        f"Approve selected ({len(picked)})",
        key=APPROVE_SELECTED_KEY,
        type="primary",
        icon=":material/done_all:",
        disabled=blocked is not None or by is None or not picked,
        help=blocked or "Approve every ticked job; each is published by its own run.",
    ):
        settings = get_settings()
        _finish(
            [
                review_queue.approve(settings.database_url, item, by=by or "", settings=settings)
                for item in picked
            ]
        )


def _page() -> None:
    st.title("Review")
    settings = get_settings()
    try:
        queue = review_queue.held(settings.database_url, PAGE_SIZE)
    except queries.DashboardDataError as exc:
        data_error(exc)
        return
    _outcomes()
    if not queue.jobs:
        st.success("No job is waiting for review.", icon=":material/task_alt:")
        return
    shown = f"the oldest {len(queue.jobs)} of " if queue.total > len(queue.jobs) else ""
    st.caption(
        f"Showing {shown}{queue.total} job(s) the quality checks held, oldest first. Approving "
        "publishes a job; rejecting ends it (the reason is kept); Redo runs every step again."
    )
    by, blocked = signin.operator(), signin.action_blocked()
    if blocked:
        st.info(md_text(blocked), icon=":material/lock:")
    else:
        st.caption(f"Decisions are recorded as {md_code(by)}.")
    _approve_selected(queue, by, blocked)
    ref = objects.store_ref(settings)
    for item in queue.jobs:
        _held_job(item, ref, by, blocked)


_page()

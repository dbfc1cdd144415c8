"""Sections of the job page: header and actions (Prefect link, re-run), timing and cost."""

from __future__ import annotations

from datetime import timedelta

import streamlit as st

from core.settings import get_settings
from core.tables import JobStatus, utcnow
from core.urls import redact_url
from dashboard import signin
from dashboard.actions import RerunResult, flow_run_url, rerun_job
from dashboard.components import asset_checklist, progress_bar, status_badge
from dashboard.fmt import ago, human_ms, usd
from dashboard.htmlviews import table_html, timeline_html
from dashboard.markup import md_code, md_link, md_text
from dashboard.models import JobDetail

__all__ = ["STALL_AFTER", "header", "rerun_key", "timing_and_cost"]

# A running job whose row has not changed for this long has probably lost its flow run.
STALL_AFTER = timedelta(minutes=15)
RERUN_DIALOG_KEY = "rerun-dialog-job"


def rerun_key(detail: JobDetail) -> str:
    """Session-state key holding the outcome of this job's last re-run request."""
    return f"rerun-result-{detail.job.id}"


def _stalled(detail: JobDetail) -> bool:
    updated = detail.job.updated_at
    return detail.job.running and updated is not None and utcnow() - updated > STALL_AFTER


def _rerun_blocked(detail: JobDetail) -> str | None:
    """Why the re-run button is disabled, or None when it may be pressed."""
    if not get_settings().prefect_api_url:
        return "Set PREFECT_API_URL (packshot up does) to re-run jobs from here."
    blocked = signin.action_blocked()
    if blocked:
        return blocked
    if detail.job.running and not _stalled(detail):
        return "The job is still running."
    return None


def _browser_host() -> str | None:
    url = st.context.url
    if not url:
        return None
    from urllib.parse import urlsplit

    return urlsplit(url).hostname


def _close_rerun_dialog() -> None:
    st.session_state.pop(RERUN_DIALOG_KEY, None)


# Open/closed lives in session state: the confirmation survives the 5-second refresh, and its
# buttons work whether the dialog reruns alone (browser) or with the whole page.
@st.dialog("Re-run this job?", on_dismiss=_close_rerun_dialog)
def _confirm_rerun(detail: JobDetail) -> None:
    job = detail.job
    st.markdown(
        f"Starts `process-image/default` again for **{md_text(job.sku)}** · {md_text(job.theme)}. "
        "Steps whose "
        "outputs are already stored are skipped, and clicking twice starts one run, not two."
    )
    force = st.checkbox(
        "Redo every step, even stored ones",
        key="rerun-force",
        help="Paid providers (Freepik) are called again.",
    )
    go, cancel = st.columns(2)
    if go.button("Re-run now", type="primary", key="rerun-confirm", icon=":material/replay:"):
        if _rerun_blocked(detail) is not None:  # signed out since the dialog opened
            _close_rerun_dialog()
            st.rerun()
        with st.spinner("Asking Prefect for a new flow run…"):
            st.session_state[rerun_key(detail)] = rerun_job(detail, get_settings(), force=force)
        _close_rerun_dialog()
        st.rerun()
    if cancel.button("Cancel", key="rerun-cancel"):
        _close_rerun_dialog()
        st.rerun()


def _rerun_outcome(detail: JobDetail) -> None:
    result: RerunResult | None = st.session_state.get(rerun_key(detail))
    if result is None:
        return
    if result.error:
        st.error(f"**Re-run not started.** {md_text(result.error)}", icon=":material/error:")
        return
    run_id = result.flow_run_id or ""
    link = flow_run_url(get_settings(), run_id, _browser_host())
    st.success(
        f"Re-run requested: flow run {md_code(run_id)} · {md_link('open in Prefect', link)}",
        icon="✅",
    )


def _actions(detail: JobDetail) -> None:
    """The flow run in the Prefect UI, and Re-run (which asks first)."""
    job = detail.job
    prefect, rerun = st.columns(2)
    if job.flow_run_id:
        prefect.link_button(
            "Prefect run",
            flow_run_url(get_settings(), job.flow_run_id, _browser_host()),
            icon=":material/open_in_new:",
            width="stretch",
            help="This job's flow run in the Prefect UI: logs, retries, task runs.",
        )
    blocked = _rerun_blocked(detail)
    if rerun.button(
        "Re-run",
        key="rerun-open",
        icon=":material/replay:",
        width="stretch",
        disabled=blocked is not None,
        help=blocked or "Trigger process-image/default again (asks first).",
    ):
        st.session_state[RERUN_DIALOG_KEY] = str(job.id)
    if blocked is None and st.session_state.get(RERUN_DIALOG_KEY) == str(job.id):
        _confirm_rerun(detail)


def header(detail: JobDetail) -> None:
    """Title, facts, actions, the seven-stage progress bar and the failure, if any."""
    job = detail.job
    title, actions = st.columns([3, 2], vertical_alignment="bottom")
    title.markdown(
        f"## {md_text(job.sku)} · {md_text(job.theme)} &nbsp; {status_badge(job.status)}"
    )
    with actions:
        _actions(detail)
    started = job.started_at.strftime("%Y-%m-%d %H:%M:%S UTC") if job.started_at else "not started"
    source = redact_url(job.source_url)
    st.caption(
        f"job {md_code(job.id)} · sha256 {md_code(job.sha256[:16])}… · source "
        f"{md_code(source)} · started {started} · took {human_ms(job.duration_ms)} · "
        f"cost {usd(job.cost_usd)}"
    )
    if _stalled(detail):
        st.warning(
            f"No progress since {ago(job.updated_at)}: the flow run may have crashed. "
            "Check it in Prefect, or re-run the job.",
            icon=":material/hourglass_disabled:",
        )
    _rerun_outcome(detail)
    progress_bar(detail)
    if job.status == JobStatus.FAILED:
        where = " · ".join(part for part in (job.error_step, job.error_type) if part)
        st.error(
            f"**Failed in {md_text(where or 'an unknown step')}**\n\n{md_text(job.error or '')}",
            icon="🛑",
        )
    st.caption(f"Assets: {asset_checklist(detail)}")


def timing_and_cost(detail: JobDetail) -> None:
    """Per-step timeline chart, the step table with attempts, time and cost, and the totals."""
    st.markdown("#### Timing and cost")
    timeline = timeline_html(detail.steps, now=utcnow())
    if timeline is None:
        st.caption("No step has started yet.")
        return
    total_ms = sum(step.duration_ms or 0.0 for step in detail.steps)
    cells = st.columns(4)
    cells[0].metric("Wall time", human_ms(detail.job.duration_ms))
    cells[1].metric("Step time (sum)", human_ms(total_ms), help="Mapped steps run side by side.")
    cells[2].metric("Cost", usd(detail.job.cost_usd))
    cells[3].metric("Attempts", sum(step.attempts for step in detail.steps))
    st.html(timeline)
    rows = [
        (
            step.label,
            step.state,
            step.attempts,
            human_ms(step.duration_ms),
            usd(step.cost_usd),
            step.provider or "",
            (step.error or "")[:200],
        )
        for step in detail.steps
    ]
    headers = ("step", "state", "attempts", "time", "cost", "provider", "error")
    st.html(table_html(headers, rows))
    st.caption(f"Total cost {usd(detail.job.cost_usd)} (steps: {usd(detail.steps_cost_usd)}).")

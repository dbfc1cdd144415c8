"""A job's steps on a time axis, drawn as plain HTML: light enough for the page's 2-second budget.

A Vega chart costs the browser a few hundred milliseconds to lay out; nine bars do not need it.
"""

from __future__ import annotations

import html
from datetime import datetime

from dashboard.fmt import human_ms
from dashboard.models import StepRow

__all__ = ["STATE_COLOURS", "timeline_html"]

STATE_COLOURS = {
    "COMPLETED": "#34a853",
    "SKIPPED": "#9aa0a6",
    "RUNNING": "#4285f4",
    "RETRYING": "#f9ab00",
    "FAILED": "#d93025",
    "PENDING": "#dadce0",
}


_ROW = "display:flex;align-items:center;gap:8px;margin:3px 0"
_LABEL = "width:150px;text-align:right;white-space:nowrap"
_TRACK = "flex:1;position:relative;height:14px;background:#f1f3f4;border-radius:3px"


def _span_ms(step: StepRow, origin: datetime, now: datetime | None) -> tuple[float, float]:
    assert step.started_at is not None
    start = (step.started_at - origin).total_seconds() * 1000
    if step.duration_ms is not None:
        return start, start + step.duration_ms
    end = step.finished_at or now
    return start, (end - origin).total_seconds() * 1000 if end else start


def timeline_html(steps: tuple[StepRow, ...], now: datetime | None = None) -> str | None:
    """One bar per step (mapped variants on their own rows) from its start to its end.

    Args:
        steps: the job's step rows, in pipeline order.
        now: where a running step's bar ends (it has no finish time yet).

    Returns:
        The HTML, or None when no step has started.
    """
    timed = sorted((s for s in steps if s.started_at is not None), key=lambda s: s.order)
    if not timed:
        return None
    origin = min(s.started_at for s in timed if s.started_at is not None)
    spans = [_span_ms(step, origin, now) for step in timed]
    total = max(max(end for _, end in spans), 1.0)
    rows = []
    for step, (start, end) in zip(timed, spans, strict=True):
        left = 100 * start / total
        width = max(100 * (end - start) / total, 0.4)
        colour = STATE_COLOURS.get(step.state, "#4285f4")
        tip = html.escape(
            f"{step.label}: {step.state}, {human_ms(step.duration_ms)}, "
            f"attempt {step.attempts}, {step.provider or 'no provider'}"
        )
        rows.append(
            f'<div style="{_ROW}"><div style="{_LABEL}">{html.escape(step.label)}</div>'
            f'<div style="{_TRACK}">'
            f'<div title="{tip}" style="position:absolute;left:{left:.2f}%;width:{width:.2f}%;'
            f'height:100%;background:{colour};border-radius:3px"></div></div>'
            f'<div style="width:80px">{html.escape(human_ms(step.duration_ms))}</div></div>'
        )
    axis = (
        '<div style="display:flex;gap:8px;color:#80868b"><div style="width:150px"></div>'
        '<div style="flex:1;display:flex;justify-content:space-between">'
        f"<span>0</span><span>{html.escape(human_ms(total))} after the first step started</span>"
        '</div><div style="width:80px"></div></div>'
    )
    return f'<div style="font-size:0.8rem">{"".join(rows)}{axis}</div>'

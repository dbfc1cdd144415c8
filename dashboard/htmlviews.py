"""Charts and tables drawn as plain HTML: what the browser lays out in milliseconds.

Streamlit's data grid and Vega charts each load a large script and cost the browser hundreds of
milliseconds to lay out; nine timeline bars, 24 hourly columns and a 26-row file list do not need
them. Every value is escaped here (``dashboard.markup``), so callers pass plain text.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from dashboard.fmt import human_ms
from dashboard.markup import html_text, safe_href
from dashboard.models import StepRow

__all__ = ["STATE_COLOURS", "Link", "bars_html", "columns_html", "table_html", "timeline_html"]

STATE_COLOURS = {
    "COMPLETED": "#34a853",
    "SKIPPED": "#9aa0a6",
    "RUNNING": "#4285f4",
    "RETRYING": "#f9ab00",
    "FAILED": "#d93025",
    "PENDING": "#dadce0",
}
_ROW = "display:flex;align-items:center;gap:8px;margin:3px 0"
_LABEL = "width:150px;text-align:right;white-space:nowrap;overflow:hidden;text-overflow:ellipsis"
_TRACK = "flex:1;position:relative;height:14px;background:#f1f3f4;border-radius:3px"
_CELL = "padding:4px 8px;border-bottom:1px solid #eee;text-align:left"
_MUTED = "color:#80868b"


@dataclass(frozen=True)
class Link:
    """A table cell that links somewhere (opens in a new tab); only http(s) URLs become links."""

    text: str
    url: str


def bars_html(items: Sequence[tuple[str, int, str]]) -> str:
    """Horizontal bars, one per ``(label, value, colour)``, scaled to the largest value."""
    peak = max((value for _, value, _ in items), default=0) or 1
    rows = [
        f'<div style="{_ROW}"><div style="{_LABEL}">{html_text(label)}</div>'
        f'<div style="{_TRACK}"><div title="{html_text(label)}: {value:,}" style="height:100%;'
        f'width:{100 * value / peak:.2f}%;background:{colour};border-radius:3px"></div></div>'
        f'<div style="width:60px">{value:,}</div></div>'
        for label, value, colour in items
    ]
    return f'<div style="font-size:0.8rem">{"".join(rows)}</div>'


def columns_html(points: Sequence[tuple[datetime, int]], *, every: int = 3) -> str:
    """Vertical columns over time (jobs per hour), an hour label under every ``every``-th one."""
    peak = max((value for _, value in points), default=0) or 1
    columns, labels = [], []
    for n, (moment, value) in enumerate(points):
        height = 100 * value / peak
        tip = f"{moment:%Y-%m-%d %H}:00 UTC: {value:,} jobs"
        columns.append(
            f'<div title="{html_text(tip)}" style="flex:1;display:flex;align-items:flex-end">'
            f'<div style="width:100%;height:{height:.2f}%;min-height:{1 if value else 0}px;'
            'background:#4285f4;border-radius:2px 2px 0 0"></div></div>'
        )
        label = f"{moment:%H}h" if n % every == 0 else ""
        labels.append(f'<div style="flex:1;text-align:left">{label}</div>')
    return (
        f'<div style="font-size:0.75rem;{_MUTED}">peak {peak:,} jobs/hour</div>'
        '<div style="display:flex;gap:2px;height:140px;border-bottom:1px solid #dadce0">'
        + "".join(columns)
        + f'</div><div style="display:flex;gap:2px;font-size:0.7rem;{_MUTED}">'
        + "".join(labels)
        + "</div>"
    )


def _cell(value: object) -> str:
    if not isinstance(value, Link):
        return html_text(value)
    href = safe_href(value.url)
    if href is None:
        return html_text(value.text)
    return f'<a href="{html_text(href)}" target="_blank" rel="noopener">{html_text(value.text)}</a>'


def table_html(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A compact table; ``Link`` cells become links, everything else escaped text."""
    head = "".join(f'<th style="{_CELL};font-weight:600">{html_text(h)}</th>' for h in headers)
    body = "".join(
        "<tr>" + "".join(f'<td style="{_CELL}">{_cell(value)}</td>' for value in row) + "</tr>"
        for row in rows
    )
    return (
        '<table style="border-collapse:collapse;width:100%;font-size:0.8rem">'
        f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    )


def _span_ms(step: StepRow, origin: datetime, now: datetime | None) -> tuple[float, float]:
    assert step.started_at is not None
    start = (step.started_at - origin).total_seconds() * 1000
    if step.duration_ms is not None:
        return start, start + step.duration_ms
    end = step.finished_at or now
    return start, (end - origin).total_seconds() * 1000 if end else start


def timeline_html(steps: Sequence[StepRow], now: datetime | None = None) -> str | None:
    """One bar per step (mapped variants on their own rows) from its start to its end.

    Args:
        steps: the job's step rows.
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
        left, width = 100 * start / total, max(100 * (end - start) / total, 0.4)
        tip = (
            f"{step.label}: {step.state}, {human_ms(step.duration_ms)}, "
            f"attempt {step.attempts}, {step.provider or 'no provider'}"
        )
        rows.append(
            f'<div style="{_ROW}"><div style="{_LABEL}">{html_text(step.label)}</div>'
            f'<div style="{_TRACK}"><div title="{html_text(tip)}" style="position:absolute;'
            f"left:{left:.2f}%;width:{width:.2f}%;height:100%;border-radius:3px;"
            f'background:{STATE_COLOURS.get(step.state, "#4285f4")}"></div></div>'
            f'<div style="width:80px">{html_text(human_ms(step.duration_ms))}</div></div>'
        )
    axis = (
        f'<div style="display:flex;gap:8px;{_MUTED}"><div style="width:150px"></div>'
        '<div style="flex:1;display:flex;justify-content:space-between">'
        f"<span>0</span><span>{html_text(human_ms(total))} after the first step started</span>"
        '</div><div style="width:80px"></div></div>'
    )
    return f'<div style="font-size:0.8rem">{"".join(rows)}{axis}</div>'

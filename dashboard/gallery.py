"""The job page's image tabs: Original · Cutout & Mask · Backgrounds · Composites · Derivatives.

Only the tab on screen loads its images (the active tab is bound to the ``tab`` query
parameter, so it can be linked to). Tiles are cached thumbnails; "Full size" opens the whole
image in a dialog, in a format every browser shows.
"""

from __future__ import annotations

from collections.abc import Callable

import streamlit as st

from core.tables import JobStatus
from core.urls import redact_url
from dashboard import objects
from dashboard.downloads import download_control
from dashboard.fmt import human_bytes, stage_number
from dashboard.markup import md_code, md_text
from dashboard.models import AssetRow, JobDetail
from dashboard.objects import StoreRef, Unavailable

__all__ = ["TABS", "image_tabs"]

TABS = ("Original", "Cutout & Mask", "Backgrounds", "Composites", "Derivatives")
_FORMAT_ORDER = ("jpeg", "webp", "avif")
_FORMAT_LABEL = {"jpeg": "JPEG", "webp": "WebP", "avif": "AVIF", "png": "PNG"}
DERIVATIVE_SIDE = 150
FULL_SIZE_KEY = "full-size-key"
# st.image never sends an image wider than this to the browser.
PAGE_MAX_WIDTH = 1460


def _close_full_size() -> None:
    st.session_state.pop(FULL_SIZE_KEY, None)


# The open dialog lives in session state, so a 5-second refresh of a running job redraws it
# instead of closing it.
@st.dialog("Full size", width="large", on_dismiss=_close_full_size)
def _full_size(asset: AssetRow, ref: StoreRef) -> None:
    st.markdown(md_code(asset.key))
    st.caption(md_text(f"{asset.pixels} · {human_bytes(asset.bytes)} · {asset.content_type}"))
    try:
        full = objects.full_view(ref, asset.key, asset.sha256)
    except Unavailable as exc:
        st.warning(md_text(exc), icon=":material/broken_image:")
        return
    notes = []
    if full.mime != asset.content_type:
        kind = full.mime.split("/")[-1].upper()
        notes.append(f"Shown as {kind} decoded from the stored {full.source_format} file")
    if full.width > PAGE_MAX_WIDTH:
        notes.append(f"scaled to {PAGE_MAX_WIDTH} px wide by the page")
    if notes:
        st.caption(md_text("; ".join(notes) + ". The download is the file itself."))
    st.image(full.data, width="content", output_format=full.pillow_format, alt=asset.name)
    download_control(asset, ref, key=f"dialog-{asset.key}")


def _tile(
    asset: AssetRow, ref: StoreRef, caption: str, *, max_side: int, compact: bool = False
) -> None:
    try:
        thumb = objects.thumbnail(ref, asset.key, asset.sha256, max_side)
    except Unavailable as exc:
        st.warning(md_text(exc), icon=":material/broken_image:")
        return
    st.image(
        thumb.data,
        caption=md_text(caption),
        width="content",
        output_format=thumb.pillow_format,
        alt=asset.name,
    )
    label = "" if compact else "Full size"
    if st.button(
        label,
        key=f"full-{asset.key}",
        icon=":material/open_in_full:",
        type="tertiary",
        help=f"Open {md_text(asset.name)} at full size",
    ):
        st.session_state[FULL_SIZE_KEY] = asset.key
    if st.session_state.get(FULL_SIZE_KEY) == asset.key:
        _full_size(asset, ref)


def _absent(detail: JobDetail, what: str) -> None:
    job = detail.job
    if job.running:
        number = stage_number(job.status)
        st.info(
            f"No {what} yet: the job is at step {number} of 7. This tab fills in as it runs.",
            icon=":material/hourglass_top:",
        )
    elif job.status == JobStatus.FAILED:
        st.warning(f"No {what}: the job failed before making them.", icon=":material/block:")
    else:
        st.info(f"No {what} recorded for this job.")


def _caption(asset: AssetRow, title: str) -> str:
    return " · ".join(part for part in (title, asset.pixels, human_bytes(asset.bytes)) if part)


def _original(detail: JobDetail, ref: StoreRef) -> None:
    originals = detail.assets_of("original")
    if not originals:
        _absent(detail, "original")
        return
    image_col, facts = st.columns([2, 1])
    with image_col:
        _tile(originals[0], ref, _caption(originals[0], "Original"), max_side=560)
    with facts:
        asset = originals[0]
        st.markdown(f"**Source** {md_code(redact_url(detail.job.source_url))}")
        st.markdown(f"**Stored** {md_code(asset.key)}")
        st.markdown(f"**Format** {md_text(asset.format or asset.content_type)} · {asset.pixels}")
        st.markdown(f"**Size** {human_bytes(asset.bytes)}")
        st.markdown(f"**SHA-256** {md_code(detail.job.sha256)}")


def _cutout_mask(detail: JobDetail, ref: StoreRef) -> None:
    cutouts, masks = detail.assets_of("cutout"), detail.assets_of("mask")
    if not cutouts and not masks:
        _absent(detail, "cutout or mask")
        return
    left, right = st.columns(2)
    with left:
        for asset in cutouts:
            _tile(
                asset, ref, _caption(asset, "Cutout (transparency as checkerboard)"), max_side=360
            )
    with right:
        for asset in masks:
            _tile(asset, ref, _caption(asset, "Mask (white = product)"), max_side=360)
            try:
                share = objects.mask_coverage(ref, asset.key, asset.sha256)
            except Unavailable:
                continue  # the tile above already says what is wrong
            st.caption(f"Product covers {share:.1%} of the photo.")


def _variants(detail: JobDetail, ref: StoreRef, kind: str, title: str, what: str) -> None:
    assets = detail.assets_of(kind)
    if not assets:
        _absent(detail, what)
        return
    columns = st.columns(max(2, len(assets)))
    for column, asset in zip(columns, assets, strict=False):
        with column:
            _tile(
                asset, ref, _caption(asset, f"{title} {asset.variant or ''}".strip()), max_side=480
            )


def _backgrounds(detail: JobDetail, ref: StoreRef) -> None:
    _variants(detail, ref, "background", "Background", "backgrounds")


def _composites(detail: JobDetail, ref: StoreRef) -> None:
    _variants(detail, ref, "composite", "Composite", "composites")


def _derivative_cell(asset: AssetRow | None, jpeg: AssetRow | None, ref: StoreRef) -> None:
    if asset is None:
        st.caption("–")
        return
    caption = f"{asset.pixels} · {human_bytes(asset.bytes)}"
    if jpeg is not None and jpeg is not asset and jpeg.bytes:
        caption += f" ({100 * (asset.bytes - jpeg.bytes) / jpeg.bytes:+.0f}% vs JPEG)"
    _tile(asset, ref, caption, max_side=DERIVATIVE_SIDE, compact=True)


def _derivatives(detail: JobDetail, ref: StoreRef) -> None:
    """Rows are sizes; columns are the formats of each composite, so all files show at once."""
    assets = detail.assets_of("derivative")
    if not assets:
        _absent(detail, "derivatives")
        return
    variants = sorted({asset.variant or 0 for asset in assets})
    formats = [f for f in _FORMAT_ORDER if any(a.format == f for a in assets)]
    formats += sorted({a.format or "?" for a in assets} - set(formats))
    sizes = sorted({a.size or "?" for a in assets}, key=lambda s: -max(_widths(assets, s)))
    columns = [(variant, fmt) for variant in variants for fmt in formats]
    widths = [0.7] + [1.0] * len(columns)
    header = st.columns(widths)
    header[0].markdown("**size**")
    for cell, (variant, fmt) in zip(header[1:], columns, strict=True):
        cell.markdown(f"**{md_text(_FORMAT_LABEL.get(fmt, fmt))}**  \ncomposite {variant}")
    found = {(a.variant or 0, a.size or "?", a.format or "?"): a for a in assets}
    for size in sizes:
        row = st.columns(widths)
        row[0].markdown(f"**{md_text(size)}**  \n{max(_widths(assets, size))} px")
        for cell, (variant, fmt) in zip(row[1:], columns, strict=True):
            with cell:
                jpeg = found.get((variant, size, "jpeg"))
                _derivative_cell(found.get((variant, size, fmt)), jpeg, ref)


def _widths(assets: list[AssetRow], size: str) -> list[int]:
    return [a.width or 0 for a in assets if (a.size or "?") == size] or [0]


_RENDERERS: tuple[Callable[[JobDetail, StoreRef], None], ...] = (
    _original,
    _cutout_mask,
    _backgrounds,
    _composites,
    _derivatives,
)


def image_tabs(detail: JobDetail, ref: StoreRef) -> None:
    """The five image tabs; only the selected one loads its images."""
    tabs = st.tabs(list(TABS), key="tab", bind="query-params")
    for tab, render in zip(tabs, _RENDERERS, strict=True):
        # ``open`` is None when the tabs do not track state: then every tab is drawn.
        if tab.open is False:
            continue
        with tab:
            render(detail, ref)

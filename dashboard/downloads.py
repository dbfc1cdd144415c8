"""The assets card: every stored file of a job with a way to download it, and a ZIP of them all.

On S3 a download is a presigned URL (the browser fetches from the bucket); a local store's
``file://`` paths mean nothing to a browser on another machine, so the dashboard serves those
bytes itself, read only when the button is clicked.
"""

from __future__ import annotations

import io
import zipfile
from functools import partial

import streamlit as st

from dashboard import objects
from dashboard.fmt import human_bytes
from dashboard.models import AssetRow, JobDetail
from dashboard.objects import StoreRef, Unavailable

__all__ = ["assets_card", "download_control", "zip_assets"]

_COLUMNS = [1.0, 4.6, 1.0, 0.9, 1.3, 1.2]


def download_control(asset: AssetRow, ref: StoreRef, *, key: str) -> None:
    """A presigned link (S3) or a button that serves the file's bytes (local store)."""
    link = objects.download_link(ref, asset.key)
    if link:
        st.link_button("Download", link, icon=":material/download:", help="Presigned URL, 1 h")
        return
    st.download_button(
        "Download",
        data=partial(objects.read_object, ref, asset.key),
        file_name=asset.name,
        mime=asset.content_type,
        key=f"download-{key}",
        on_click="ignore",
        icon=":material/download:",
    )


def zip_assets(detail: JobDetail, ref: StoreRef) -> bytes:
    """Every stored file of the job in one ZIP, under their keys; missing ones listed in a note."""
    buffer = io.BytesIO()
    missing = []
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        for asset in detail.assets:
            try:
                archive.writestr(asset.key, objects.read_object(ref, asset.key))
            except Unavailable as exc:
                missing.append(f"{asset.key}: {exc}")
        if missing:
            archive.writestr("MISSING.txt", "\n".join(missing) + "\n")
    return buffer.getvalue()


def _row(asset: AssetRow, ref: StoreRef, present: bool | None) -> None:
    cells = st.columns(_COLUMNS, vertical_alignment="center")
    cells[0].markdown(f"{asset.kind}" + (f" {asset.variant}" if asset.variant else ""))
    cells[1].markdown(f"`{asset.key}`")
    cells[2].text(asset.pixels or "–")
    cells[3].text(human_bytes(asset.bytes))
    cells[4].text(asset.content_type)
    with cells[5]:
        if present is False:
            st.markdown(":red[missing]", help="The row exists but the store has no such object.")
        else:
            download_control(asset, ref, key=asset.key)


def assets_card(detail: JobDetail, ref: StoreRef) -> None:
    """The bordered card listing all files of the job."""
    job = detail.job
    with st.container(border=True):
        title, action = st.columns([3, 1], vertical_alignment="center")
        title.markdown(
            f"#### Assets · {len(detail.assets)} files · {human_bytes(detail.total_bytes)}"
        )
        if not detail.assets:
            st.caption("No files recorded yet.")
            return
        action.download_button(
            "Download all (.zip)",
            data=partial(zip_assets, detail, ref),
            file_name=f"{job.sku}-{detail.sha256[:12]}-{job.theme}.zip",
            mime="application/zip",
            key="download-all",
            on_click="ignore",
            icon=":material/folder_zip:",
        )
        header = st.columns(_COLUMNS)
        for cell, name in zip(header, ("kind", "key", "pixels", "size", "type", ""), strict=True):
            cell.markdown(f"**{name}**")
        for asset in detail.assets:
            _row(asset, ref, objects.stored(ref, asset.key))

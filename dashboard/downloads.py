"""The assets card: every stored file of a job with a way to download it, and a ZIP of them all.

On S3 each file's download is a presigned URL in the table (the browser fetches from the
bucket). A local store's ``file://`` paths mean nothing to a browser on another machine, so the
dashboard serves those bytes itself, read only when a download button is clicked. The listing
is one table rather than a row of widgets per file: the page stays light with dozens of files.
"""

from __future__ import annotations

import io
import zipfile
from functools import partial

import streamlit as st

from dashboard import objects
from dashboard.fmt import human_bytes
from dashboard.htmlviews import Link, table_html
from dashboard.markup import md_text
from dashboard.models import AssetRow, JobDetail
from dashboard.objects import StoreRef, Unavailable

__all__ = ["assets_card", "download_control", "zip_assets"]


def download_control(asset: AssetRow, ref: StoreRef, *, key: str) -> None:
    """A presigned link (S3) or a button that serves the file's bytes (local store)."""
    link = objects.download_link(ref, asset.key)
    if link:
        st.link_button("Download", link, icon=":material/download:", help="Presigned URL, 1 h")
        return
    st.download_button(
        f"Download {md_text(asset.name)}",
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


def _table(
    detail: JobDetail, links: dict[str, str | None], present: dict[str, bool | None]
) -> None:
    with_links = any(links.values())
    checked = any(value is not None for value in present.values())
    headers = ["kind", "key", "pixels", "size", "type"]
    headers += ["stored"] if checked else []
    headers += ["download"] if with_links else []
    rows = []
    for asset in detail.assets:
        row: list[object] = [
            asset.kind + (f" {asset.variant}" if asset.variant else ""),
            asset.key,
            asset.pixels,
            human_bytes(asset.bytes),
            asset.content_type,
        ]
        if checked:
            row.append({True: "✓", False: "missing", None: ""}[present[asset.key]])
        if with_links:
            url = links[asset.key]
            row.append(Link("download", url) if url else "")
        rows.append(row)
    st.html(table_html(headers, rows))


def _pick_and_download(detail: JobDetail, ref: StoreRef, present: dict[str, bool | None]) -> None:
    stored = [asset for asset in detail.assets if present[asset.key] is not False]
    if not stored:
        return
    by_key = {asset.key: asset for asset in stored}
    left, right = st.columns([3, 2], vertical_alignment="bottom")
    key = left.selectbox(
        "File",
        list(by_key),
        format_func=lambda k: f"{by_key[k].kind} · {by_key[k].name}",
        key="assets-file",
    )
    with right:
        download_control(by_key[key], ref, key="assets-file")


def assets_card(detail: JobDetail, ref: StoreRef) -> None:
    """The bordered card listing all files of the job, with their downloads."""
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
            file_name=f"{job.sku}-{job.sha256[:12]}-{job.theme}.zip",
            mime="application/zip",
            key="download-all",
            on_click="ignore",
            icon=":material/folder_zip:",
        )
        found = objects.availability(ref, tuple(asset.key for asset in detail.assets))
        _table(detail, found.links, found.present)
        if not all(found.links.values()):
            _pick_and_download(detail, ref, found.present)

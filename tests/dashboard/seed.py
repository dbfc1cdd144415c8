"""Jobs for dashboard tests and benchmarks, written through ``core.jobs`` with real images in a store.

A DONE job has the 26 files a real run leaves (original, cutout, mask, 2 backgrounds,
2 composites, 18 derivatives, manifest); FAILED and running jobs stop part-way, as real ones do.
Step times are spread out afterwards so the timeline looks like a real run.
"""

from __future__ import annotations

import hashlib
import io
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from PIL import Image, ImageDraw, ImageFilter
from sqlmodel import select

from core import jobs, keys
from core.db import session_scope, upgrade_schema
from core.jobs import AssetRecord
from core.schemas import ImageJobSpec
from core.storage import ObjectStore
from core.tables import AssetKind, JobStatus, JobStep, Step
from tests.helpers.images import product_photo

FORMATS = (("jpeg", "jpg", "JPEG"), ("webp", "webp", "WEBP"), ("avif", "avif", "AVIF"))
STEP_MS = {
    Step.DOWNLOAD: 48.0,
    Step.REMOVE_BACKGROUND: 3350.0,
    Step.GENERATE_BACKGROUNDS: 350.0,
    Step.COMPOSITE: 545.0,
    Step.DERIVATIVES: 1800.0,
    Step.MANIFEST: 34.0,
    Step.PUBLISH: 1.0,
}


@dataclass(frozen=True)
class Sizes:
    """Pixel sizes of the generated files (small for tests, the real ones for benchmarks)."""

    photo: tuple[int, int] = (320, 240)
    master: int = 320
    derivatives: tuple[tuple[str, int], ...] = (("hero", 240), ("pdp", 160), ("thumb", 64))


SMALL = Sizes()
REAL = Sizes(
    photo=(1200, 900), master=1600, derivatives=(("hero", 1200), ("pdp", 800), ("thumb", 200))
)


def _encode(image: Image.Image, fmt: str) -> bytes:
    buffer = io.BytesIO()
    options: dict[str, object] = {"quality": 80}
    if fmt == "AVIF":
        options["speed"] = 10
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def _put(store: ObjectStore, key: str, data: bytes, content_type: str) -> None:
    store.put(key, data, content_type=content_type)


def _record(
    kind: AssetKind, key: str, data: bytes, image: Image.Image | None, **extra: object
) -> AssetRecord:
    return AssetRecord(
        kind=kind,
        key=key,
        content_type=str(extra.pop("content_type", "image/png")),
        bytes=len(data),
        width=image.width if image else None,
        height=image.height if image else None,
        sha256=hashlib.sha256(data).hexdigest(),
        **extra,  # type: ignore[arg-type]
    )


def _mask(size: tuple[int, int]) -> Image.Image:
    width, height = size
    mask = Image.new("L", size, 0)
    w, h = width * 0.28, height * 0.7
    left, top = (width - w) / 2, (height - h) / 2
    ImageDraw.Draw(mask).rounded_rectangle(
        (left, top, left + w, top + h), radius=min(w, h) * 0.25, fill=255
    )
    return mask.filter(ImageFilter.GaussianBlur(1))


def _background(side: int, n: int) -> Image.Image:
    top, bottom = (
        ((236, 242, 250), (176, 196, 226)) if n == 1 else ((250, 240, 228), (214, 190, 160))
    )
    ramp = Image.linear_gradient("L").resize((side, side))
    return Image.merge(
        "RGB",
        [
            ramp.point(lambda v, a=a, b=b: a + (b - a) * v // 255)
            for a, b in zip(top, bottom, strict=True)
        ],
    )


def _new_job(database_url: str, sku: str, theme: str, photo: bytes) -> uuid.UUID:
    sha = hashlib.sha256(photo).hexdigest()
    spec = ImageJobSpec(
        sku=sku,
        image_url=f"https://cdn.example.com/{sku}.jpg?token=secret",
        sha256=sha,
        theme=theme,
    )
    with session_scope(database_url) as session:
        job, _ = jobs.get_or_create_job(session, spec=spec)
        jobs.start_job(session, job_id=job.id, flow_run_id=str(uuid.uuid4()))
        return job.id


def _step(
    database_url: str,
    job_id: uuid.UUID,
    step: Step,
    assets: list[AssetRecord],
    *,
    variant: int = 0,
    cost: float = 0.0,
    provider: str = "pillow",
) -> None:
    with session_scope(database_url) as session:
        jobs.step_started(session, job_id=job_id, step=step, variant=variant)
        jobs.step_finished(
            session,
            job_id=job_id,
            step=step,
            variant=variant,
            duration_ms=STEP_MS[step],
            cost_usd=cost,
            provider=provider,
        )
        if assets:
            jobs.record_assets(session, job_id=job_id, assets=assets)


def _advance(database_url: str, job_id: uuid.UUID, status: JobStatus) -> None:
    with session_scope(database_url) as session:
        jobs.advance_status(session, job_id=job_id, status=status)


def seed_job(
    database_url: str,
    store: ObjectStore,
    *,
    sku: str = "LAMP-1",
    theme: str = "default",
    stop_after: JobStatus = JobStatus.DONE,
    fail_in: Step | None = None,
    sizes: Sizes = SMALL,
    cost: float = 0.0125,
) -> uuid.UUID:
    """One job through the pipeline up to ``stop_after`` (or failing in ``fail_in``), with files."""
    upgrade_schema(database_url)
    photo_image = product_photo(sizes.photo)
    photo = _encode(photo_image, "JPEG")
    job_id = _new_job(database_url, sku, theme, photo)
    sha = hashlib.sha256(photo).hexdigest()
    order = list(Step)

    def reached(step: Step) -> bool:
        if fail_in is not None:
            return order.index(step) < order.index(fail_in)
        target = {
            JobStatus.NEW: 0,
            JobStatus.BG_REMOVED: 2,
            JobStatus.BACKGROUND_READY: 3,
            JobStatus.COMPOSITED: 4,
            JobStatus.DERIVATIVES: 5,
            JobStatus.SHOPIFY_PUSH: 6,
            JobStatus.DONE: 7,
        }[stop_after]
        return order.index(step) < target

    original_key = keys.original_key(sku, sha, "jpg")
    _put(store, original_key, photo, "image/jpeg")
    if reached(Step.DOWNLOAD):
        _step(
            database_url,
            job_id,
            Step.DOWNLOAD,
            [
                _record(
                    AssetKind.ORIGINAL,
                    original_key,
                    photo,
                    photo_image,
                    content_type="image/jpeg",
                    format="jpeg",
                )
            ],
            provider="http",
        )
    if reached(Step.REMOVE_BACKGROUND):
        mask = _mask(photo_image.size)
        cutout = photo_image.convert("RGBA")
        cutout.putalpha(mask)
        cutout = cutout.crop(mask.getbbox())
        mask_png, cutout_png = _encode(mask, "PNG"), _encode(cutout, "PNG")
        _put(store, keys.mask_key(sku, sha), mask_png, "image/png")
        _put(store, keys.cutout_key(sku, sha), cutout_png, "image/png")
        _step(
            database_url,
            job_id,
            Step.REMOVE_BACKGROUND,
            [
                _record(
                    AssetKind.CUTOUT, keys.cutout_key(sku, sha), cutout_png, cutout, format="png"
                ),
                _record(AssetKind.MASK, keys.mask_key(sku, sha), mask_png, mask, format="png"),
            ],
            cost=cost,
            provider="local",
        )
        _advance(database_url, job_id, JobStatus.BG_REMOVED)
    backgrounds = [_background(sizes.master, n) for n in (1, 2)]
    if reached(Step.GENERATE_BACKGROUNDS):
        records = []
        for n, image in enumerate(backgrounds, start=1):
            data = _encode(image, "JPEG")
            _put(store, keys.background_key(theme, sku, sha, n), data, "image/jpeg")
            records.append(
                _record(
                    AssetKind.BACKGROUND,
                    keys.background_key(theme, sku, sha, n),
                    data,
                    image,
                    content_type="image/jpeg",
                    format="jpeg",
                    variant=n,
                )
            )
        _step(database_url, job_id, Step.GENERATE_BACKGROUNDS, records, provider="gradient")
        _advance(database_url, job_id, JobStatus.BACKGROUND_READY)
    composites = []
    for n, background in enumerate(backgrounds, start=1):
        product = photo_image.convert("RGBA")
        product.putalpha(_mask(photo_image.size))
        scale = sizes.master / max(product.size)
        product = product.resize((int(product.width * scale), int(product.height * scale)))
        master = background.copy()
        master.paste(
            product,
            ((sizes.master - product.width) // 2, (sizes.master - product.height) // 2),
            product,
        )
        composites.append(master)
        if reached(Step.COMPOSITE):
            data = _encode(master, "JPEG")
            _put(store, keys.composite_key(theme, sku, sha, n), data, "image/jpeg")
            _step(
                database_url,
                job_id,
                Step.COMPOSITE,
                [
                    _record(
                        AssetKind.COMPOSITE,
                        keys.composite_key(theme, sku, sha, n),
                        data,
                        master,
                        content_type="image/jpeg",
                        format="jpeg",
                        variant=n,
                    )
                ],
                variant=n,
            )
    if reached(Step.COMPOSITE):
        _advance(database_url, job_id, JobStatus.COMPOSITED)
    if reached(Step.DERIVATIVES):
        for n, master in enumerate(composites, start=1):
            records = []
            for size_name, side in sizes.derivatives:
                resized = master.resize((side, side), Image.Resampling.LANCZOS)
                for fmt, ext, pillow_fmt in FORMATS:
                    data = _encode(resized, pillow_fmt)
                    key = keys.derivative_key(theme, sku, sha, n, size_name, ext)
                    _put(store, key, data, f"image/{fmt}")
                    records.append(
                        _record(
                            AssetKind.DERIVATIVE,
                            key,
                            data,
                            resized,
                            content_type=f"image/{fmt}",
                            format=fmt,
                            size=size_name,
                            variant=n,
                        )
                    )
            _step(database_url, job_id, Step.DERIVATIVES, records, variant=n)
        _advance(database_url, job_id, JobStatus.DERIVATIVES)
    if reached(Step.MANIFEST):
        manifest = json.dumps({"sku": sku, "sha256": sha, "theme": theme}).encode()
        key = keys.manifest_key(sku, sha, theme)
        _put(store, key, manifest, "application/json")
        _step(
            database_url,
            job_id,
            Step.MANIFEST,
            [
                _record(
                    AssetKind.MANIFEST,
                    key,
                    manifest,
                    None,
                    content_type="application/json",
                    format="json",
                )
            ],
            provider="packshot",
        )
        _advance(database_url, job_id, JobStatus.SHOPIFY_PUSH)
    if reached(Step.PUBLISH):
        _step(database_url, job_id, Step.PUBLISH, [], provider="none")
        with session_scope(database_url) as session:
            jobs.finish_job(session, job_id=job_id, manifest_key=keys.manifest_key(sku, sha, theme))
    if fail_in is not None:
        with session_scope(database_url) as session:
            jobs.step_started(
                session,
                job_id=job_id,
                step=fail_in,
                variant=1 if fail_in in (Step.COMPOSITE, Step.DERIVATIVES) else 0,
            )
            jobs.step_failed(
                session,
                job_id=job_id,
                step=fail_in,
                variant=1 if fail_in in (Step.COMPOSITE, Step.DERIVATIVES) else 0,
                attempt=4,
                error="ProviderUnavailable: segmenter timed out after 30 s",
                final=True,
                duration_ms=30000.0,
            )
            jobs.fail_job(
                session,
                job_id=job_id,
                step=fail_in.value,
                error_type="ProviderUnavailable",
                message="segmenter timed out after 30 s (4 attempts)",
            )
    elif stop_after is not JobStatus.DONE:
        next_step = next(step for step in order if not reached(step))
        with session_scope(database_url) as session:
            jobs.step_started(
                session,
                job_id=job_id,
                step=next_step,
                variant=1 if next_step in (Step.COMPOSITE, Step.DERIVATIVES) else 0,
            )
    spread_step_times(database_url, job_id)
    return job_id


def spread_step_times(database_url: str, job_id: uuid.UUID, start: datetime | None = None) -> None:
    """Lay the job's steps out in time as a real run does (mapped variants side by side)."""
    start = start or datetime.now(UTC) - timedelta(seconds=30)
    with session_scope(database_url) as session:
        rows = jobs.list_steps(session, job_id=job_id)
        clock = start
        previous: Step | None = None
        stage_end = start
        for row in rows:
            step = Step(row.step)
            if step != previous:
                clock, previous = stage_end, step
            row.started_at = clock + timedelta(milliseconds=15 * row.variant)
            if row.finished_at is not None:
                row.finished_at = row.started_at + timedelta(milliseconds=row.duration_ms or 0)
                stage_end = max(stage_end, row.finished_at)
            session.add(row)
        job = jobs.get_job(session, job_id=job_id)
        assert job is not None
        job.created_at = job.started_at = start - timedelta(milliseconds=40)
        if job.finished_at is not None:
            job.finished_at = stage_end + timedelta(milliseconds=20)
        session.add(job)


def step_count(database_url: str, job_id: uuid.UUID) -> int:
    """How many step rows the job has (for tests that check the seed itself)."""
    with session_scope(database_url) as session:
        return len(session.exec(select(JobStep).where(JobStep.job_id == job_id)).all())

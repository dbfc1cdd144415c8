"""Jobs for dashboard tests and benchmarks, written through ``core.jobs`` with real images in a store.

A DONE job has the 26 files a real run leaves (original, cutout, mask, 2 backgrounds,
2 composites, 18 derivatives, manifest); FAILED and running jobs stop part-way, as real ones do.
Step times are spread out afterwards so the timeline looks like a real run's.
"""

from __future__ import annotations

import hashlib
import io
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from PIL import Image, ImageChops, ImageDraw, ImageFilter

from core import jobs, keys, review
from core.db import session_scope, upgrade_schema
from core.jobs import AssetRecord
from core.schemas import ImageJobSpec, QualityReport
from core.storage import ObjectStore
from core.tables import AssetKind, Job, JobStatus, Step
from tests.helpers.images import product_photo

SAMPLE_PHOTO = Path(__file__).resolve().parents[2] / "deployments" / "samples" / "desk_lamp.jpg"
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
# The status each step moves the job to.
STATUS_AFTER = {
    Step.REMOVE_BACKGROUND: JobStatus.BG_REMOVED,
    Step.GENERATE_BACKGROUNDS: JobStatus.BACKGROUND_READY,
    Step.COMPOSITE: JobStatus.COMPOSITED,
    Step.DERIVATIVES: JobStatus.DERIVATIVES,
    Step.MANIFEST: JobStatus.SHOPIFY_PUSH,
}
MAPPED = (Step.COMPOSITE, Step.DERIVATIVES)


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
    options: dict[str, object] = {"quality": 82}
    if fmt == "AVIF":
        options["speed"] = 10
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def _bottle_mask(size: tuple[int, int]) -> Image.Image:
    """The product of ``product_photo``: a rounded bottle in the middle."""
    width, height = size
    w, h = width * 0.28, height * 0.7
    left, top = (width - w) / 2, (height - h) / 2
    mask = Image.new("L", size, 0)
    ImageDraw.Draw(mask).rounded_rectangle(
        (left, top, left + w, top + h), radius=min(w, h) * 0.25, fill=255
    )
    return mask.filter(ImageFilter.GaussianBlur(1))


def _dark_object_mask(photo: Image.Image) -> Image.Image:
    """A dark product on a light studio wall (the sample desk lamp): threshold, close, crop."""
    mask = photo.convert("L").point(lambda v: 255 if v < 95 else 0)
    mask = mask.filter(ImageFilter.MaxFilter(5)).filter(ImageFilter.MinFilter(5))
    keep = Image.new("L", mask.size, 0)
    # Not the frame edge nor the pen pot and books on the right.
    keep.paste(255, (int(mask.width * 0.04), 0, int(mask.width * 0.8), mask.height))
    return ImageChops.multiply(mask, keep).filter(ImageFilter.GaussianBlur(0.8))


def _background(side: int, n: int) -> Image.Image:
    top, bottom = (
        ((236, 242, 250), (176, 196, 226)) if n == 1 else ((250, 240, 228), (214, 190, 160))
    )
    ramp = Image.linear_gradient("L").resize((side, side))
    bands = [
        ramp.point(lambda v, a=a, b=b: a + (b - a) * v // 255)
        for a, b in zip(top, bottom, strict=True)
    ]
    return Image.merge("RGB", bands)


@dataclass
class _Run:
    """One seeded job: writes each step's files and rows the way the pipeline's tasks do."""

    database_url: str
    store: ObjectStore
    sku: str
    theme: str
    sizes: Sizes
    cost: float
    photo: Image.Image
    mask: Image.Image
    image_url: str
    error: str
    job_id: uuid.UUID = field(init=False)
    sha: str = field(init=False)
    photo_bytes: bytes = field(init=False)
    composites: list[Image.Image] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.photo_bytes = _encode(self.photo, "JPEG")
        self.sha = hashlib.sha256(self.photo_bytes).hexdigest()
        spec = ImageJobSpec(
            sku=self.sku,
            image_url=self.image_url,
            sha256=self.sha,
            theme=self.theme,
        )
        with session_scope(self.database_url) as session:
            job, _ = jobs.get_or_create_job(session, spec=spec)
            jobs.start_job(session, job_id=job.id, flow_run_id=str(uuid.uuid4()))
            self.job_id = job.id

    def put(
        self,
        kind: AssetKind,
        key: str,
        data: bytes,
        image: Image.Image | None,
        fmt: str,
        **extra: object,
    ) -> AssetRecord:
        content_type = "application/json" if fmt == "json" else f"image/{fmt}"
        self.store.put(key, data, content_type=content_type)
        return AssetRecord(
            kind=kind,
            key=key,
            content_type=content_type,
            bytes=len(data),
            width=image.width if image else None,
            height=image.height if image else None,
            format=fmt,
            sha256=hashlib.sha256(data).hexdigest(),
            **extra,  # type: ignore[arg-type]
        )

    def step(
        self,
        step: Step,
        assets: list[AssetRecord],
        *,
        variant: int = 0,
        cost: float = 0.0,
        provider: str = "pillow",
    ) -> None:
        with session_scope(self.database_url) as session:
            jobs.step_started(session, job_id=self.job_id, step=step, variant=variant)
            jobs.step_finished(
                session,
                job_id=self.job_id,
                step=step,
                variant=variant,
                duration_ms=STEP_MS[step],
                cost_usd=cost,
                provider=provider,
            )
            jobs.record_assets(session, job_id=self.job_id, assets=assets)
            if step in STATUS_AFTER and (step not in MAPPED or variant == 2):
                jobs.advance_status(session, job_id=self.job_id, status=STATUS_AFTER[step])

    def download(self) -> None:
        key = keys.original_key(self.sku, self.sha, "jpg")
        self.step(
            Step.DOWNLOAD,
            [self.put(AssetKind.ORIGINAL, key, self.photo_bytes, self.photo, "jpeg")],
            provider="http",
        )

    def remove_background(self) -> None:
        cutout = self.photo.convert("RGBA")
        cutout.putalpha(self.mask)
        cutout = cutout.crop(self.mask.getbbox())
        assets = [
            self.put(
                AssetKind.CUTOUT,
                keys.cutout_key(self.sku, self.sha),
                _encode(cutout, "PNG"),
                cutout,
                "png",
            ),
            self.put(
                AssetKind.MASK,
                keys.mask_key(self.sku, self.sha),
                _encode(self.mask, "PNG"),
                self.mask,
                "png",
            ),
        ]
        self.step(Step.REMOVE_BACKGROUND, assets, cost=self.cost, provider="local")

    def generate_backgrounds(self) -> None:
        assets = []
        for n in (1, 2):
            image = _background(self.sizes.master, n)
            key = keys.background_key(self.theme, self.sku, self.sha, n)
            assets.append(
                self.put(
                    AssetKind.BACKGROUND, key, _encode(image, "JPEG"), image, "jpeg", variant=n
                )
            )
        self.step(Step.GENERATE_BACKGROUNDS, assets, provider="gradient")

    def composite(self) -> None:
        side = self.sizes.master
        product = self.photo.convert("RGBA")
        product.putalpha(self.mask)
        product = product.crop(self.mask.getbbox())
        scale = side * 0.8 / max(product.size)
        product = product.resize(
            (round(product.width * scale), round(product.height * scale)), Image.Resampling.LANCZOS
        )
        at = ((side - product.width) // 2, (side - product.height) // 2)
        shadow = Image.new("L", (side, side), 0)
        shadow.paste(
            product.getchannel("A").point(lambda v: v * 3 // 10),
            (at[0] + side // 200, at[1] + side // 200),
        )
        shadow = shadow.filter(ImageFilter.GaussianBlur(side / 80))
        for n in (1, 2):
            master = _background(side, n)
            master.paste((40, 40, 40), (0, 0), shadow)
            master.paste(product, at, product)
            self.composites.append(master)
            key = keys.composite_key(self.theme, self.sku, self.sha, n)
            self.step(
                Step.COMPOSITE,
                [
                    self.put(
                        AssetKind.COMPOSITE, key, _encode(master, "JPEG"), master, "jpeg", variant=n
                    )
                ],
                variant=n,
            )

    def derivatives(self) -> None:
        for n, master in enumerate(self.composites, start=1):
            assets = []
            for size, pixels in self.sizes.derivatives:
                resized = master.resize((pixels, pixels), Image.Resampling.LANCZOS)
                for fmt, ext, pillow in FORMATS:
                    key = keys.derivative_key(self.theme, self.sku, self.sha, n, size, ext)
                    assets.append(
                        self.put(
                            AssetKind.DERIVATIVE,
                            key,
                            _encode(resized, pillow),
                            resized,
                            fmt,
                            size=size,
                            variant=n,
                        )
                    )
            self.step(Step.DERIVATIVES, assets, variant=n)

    def manifest(self) -> None:
        document = json.dumps({"sku": self.sku, "sha256": self.sha, "theme": self.theme}).encode()
        key = keys.manifest_key(self.sku, self.sha, self.theme)
        self.step(
            Step.MANIFEST,
            [self.put(AssetKind.MANIFEST, key, document, None, "json")],
            provider="packshot",
        )

    def publish(self) -> None:
        self.step(Step.PUBLISH, [], provider="none")
        with session_scope(self.database_url) as session:
            jobs.finish_job(
                session,
                job_id=self.job_id,
                manifest_key=keys.manifest_key(self.sku, self.sha, self.theme),
            )

    def fail(self, step: Step) -> None:
        variant = 1 if step in MAPPED else 0
        with session_scope(self.database_url) as session:
            jobs.step_started(session, job_id=self.job_id, step=step, variant=variant)
            jobs.step_failed(
                session,
                job_id=self.job_id,
                step=step,
                variant=variant,
                attempt=4,
                final=True,
                duration_ms=30_000.0,
                error=f"ProviderUnavailable: {self.error}",
            )
            jobs.fail_job(
                session,
                job_id=self.job_id,
                step=step.value,
                error_type="ProviderUnavailable",
                message=f"{self.error} (4 attempts)",
            )

    def hold(self, report: QualityReport) -> None:
        with session_scope(self.database_url) as session:
            review.set_quality(session, job_id=self.job_id, report=report)
            review.hold(session, job_id=self.job_id)

    def start(self, step: Step) -> None:
        with session_scope(self.database_url) as session:
            jobs.step_started(
                session, job_id=self.job_id, step=step, variant=1 if step in MAPPED else 0
            )

    def stages(self) -> list[tuple[Step, Callable[[], None]]]:
        return [
            (Step.DOWNLOAD, self.download),
            (Step.REMOVE_BACKGROUND, self.remove_background),
            (Step.GENERATE_BACKGROUNDS, self.generate_backgrounds),
            (Step.COMPOSITE, self.composite),
            (Step.DERIVATIVES, self.derivatives),
            (Step.MANIFEST, self.manifest),
            (Step.PUBLISH, self.publish),
        ]


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
    sample_photo: bool = False,
    image_url: str | None = None,
    error: str = "segmenter timed out after 30 s",
    held: QualityReport | None = None,
) -> uuid.UUID:
    """One job through the pipeline up to ``stop_after`` (or failing in ``fail_in``), with files.

    ``sample_photo`` uses the bundled desk-lamp photo (for screenshots) instead of a drawn bottle.
    ``image_url`` is the job's source (a signed CDN URL by default); ``error`` is what the step
    failing in ``fail_in`` reports. ``held`` stops the job after its manifest in NEEDS_REVIEW
    with that quality report, as the quality gate does.
    """
    upgrade_schema(database_url)
    if sample_photo:
        photo = Image.open(SAMPLE_PHOTO).convert("RGB")
        mask = _dark_object_mask(photo)
    else:
        photo = product_photo(sizes.photo)
        mask = _bottle_mask(photo.size)
    image_url = image_url or f"https://cdn.example.com/{sku}.jpg?token=secret"
    run = _Run(database_url, store, sku, theme, sizes, cost, photo, mask, image_url, error)
    for step, make in run.stages():
        if step == fail_in:
            run.fail(step)
            break
        if held is not None and step == Step.PUBLISH:
            run.hold(held)
            break
        if fail_in is None and stop_after is not JobStatus.DONE and _done_with(step, stop_after):
            run.start(step)
            break
        make()
    spread_step_times(database_url, run.job_id)
    return run.job_id


def _done_with(step: Step, stop_after: JobStatus) -> bool:
    """True when ``step`` is the first one a job at ``stop_after`` has not finished."""
    reached = [
        s for s, status in STATUS_AFTER.items() if status.step_number <= stop_after.step_number
    ]
    finished = {Step.DOWNLOAD, *reached} if stop_after is not JobStatus.NEW else set()
    return step not in finished


def spread_step_times(database_url: str, job_id: uuid.UUID, start: datetime | None = None) -> None:
    """Lay the job's steps out in time as a real run does (mapped variants side by side)."""
    start = start or datetime.now(UTC) - timedelta(seconds=30)
    with session_scope(database_url) as session:
        clock = stage_end = start
        previous: str | None = None
        for row in jobs.list_steps(session, job_id=job_id):
            if row.step != previous:
                clock, previous = stage_end, row.step
            row.started_at = clock + timedelta(milliseconds=15 * row.variant)
            if row.finished_at is not None:
                row.finished_at = row.started_at + timedelta(milliseconds=row.duration_ms or 0)
                stage_end = max(stage_end, row.finished_at)
            session.add(row)
        job = jobs.get_job(session, job_id=job_id)
        assert job is not None
        job.created_at = job.started_at = start - timedelta(milliseconds=40)
        job.updated_at = stage_end
        if job.finished_at is not None:
            job.finished_at = job.updated_at = stage_end + timedelta(milliseconds=20)
        session.add(job)


def stored_job(url: str, job_id: uuid.UUID) -> Job:
    """The job row as stored now, detached from its session."""
    with session_scope(url) as session:
        job = session.get(Job, job_id)
        assert job is not None
        session.expunge(job)
    return job

"""The models derived from the tables: the JSON they publish, the rows they copy, the schema."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlmodel import select

from core import jobs
from core.db import session_scope, upgrade_schema
from core.manifest import Manifest, build_manifest
from core.schemas import ImageJobSpec
from core.tables import Asset, AssetKind, JobStep, Step, StepState

SHA = "ab" * 32
T0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'jobs.db'}"
    upgrade_schema(url)
    return url


def _rows(job_id: uuid.UUID) -> tuple[list[Asset], list[JobStep]]:
    common = {"job_id": job_id, "content_type": "image/png", "width": 8, "height": 6}
    assets = [
        Asset(kind=AssetKind.ORIGINAL, key="originals/o.jpg", bytes=9, format="jpeg", **common),
        Asset(kind=AssetKind.CUTOUT, key="cutouts/c.png", bytes=5, sha256=SHA, **common),
        Asset(kind=AssetKind.BACKGROUND, key="backgrounds/b-2.png", bytes=3, variant=2, **common),
    ]
    by_variant = {"by_variant": {"2": {"provider": "freepik-mystic"}}}
    steps = [
        JobStep(
            job_id=job_id,
            step=Step.REMOVE_BACKGROUND,
            state=StepState.COMPLETED,
            attempts=2,
            duration_ms=40.5,
            cost_usd=0.12,
            provider="freepik",
            details='{"model": "m"}',
        ),
        JobStep(
            job_id=job_id,
            step=Step.GENERATE_BACKGROUNDS,
            state=StepState.SKIPPED,
            attempts=1,
            duration_ms=1.0,
            provider="gradient",
            details=json.dumps(by_variant),
        ),
    ]
    return assets, steps


def _stored_job(url: str) -> uuid.UUID:
    """A failed job with the steps and assets of ``_rows``, recorded as the pipeline does."""
    spec = ImageJobSpec(sku="SKU-7", image_url="https://cdn.example/7.jpg", sha256=SHA)
    with session_scope(url) as s:
        job, _ = jobs.get_or_create_job(s, spec=spec)
        assets, steps = _rows(job.id)
        s.add_all(steps)
        records = [jobs.AssetRecord.model_validate(asset) for asset in assets]
        jobs.record_assets(s, job_id=job.id, assets=records)
        jobs.fail_job(s, job_id=job.id, step="derivatives", error_type="X", message="boom")
        job.flow_run_id, job.manifest_key, job.cost_usd = "run-1", "manifests/SKU-7/m.json", 0.12
        job.created_at, job.started_at, job.finished_at = T0, T0, T0.replace(second=7)
        return job.id


def test_api_job_view_json_is_pinned(sqlite_url: str) -> None:
    job_id = _stored_job(sqlite_url)
    with session_scope(sqlite_url) as s:
        view = jobs.job_view(s, job_id=job_id)
    assert view is not None
    # As GET /api/jobs/{id} and `packshot process --json` write it (SQLite keeps naive times).
    png = '"width": 8, "height": 6'
    expected = (
        f'{{"jobId": "{job_id}", "sku": "SKU-7", "sha256": "{SHA}", "theme": "default", '
        '"status": "FAILED", "error": "boom", "errorStep": "derivatives", "errorType": "X", '
        '"manifestKey": "manifests/SKU-7/m.json", "flowRunId": "run-1", "costUsd": 0.12, '
        '"ms": 2000.0, "createdAt": "2026-01-02T03:04:05", "quality": null, "steps": ['
        '{"step": "remove_background", "variant": 0, "state": "COMPLETED", "attempts": 2, '
        '"ms": 40.5, "costUsd": 0.12, "provider": "freepik", "error": null}, '
        '{"step": "generate_backgrounds", "variant": 0, "state": "SKIPPED", "attempts": 1, '
        '"ms": 1.0, "costUsd": 0.0, "provider": "gradient", "error": null}], "assets": ['
        '{"kind": "original", "key": "originals/o.jpg", "variant": null, "size": null, '
        f'"format": "jpeg", {png}, "bytes": 9, "contentType": "image/png"}}, '
        '{"kind": "cutout", "key": "cutouts/c.png", "variant": null, "size": null, '
        f'"format": null, {png}, "bytes": 5, "contentType": "image/png"}}, '
        '{"kind": "background", "key": "backgrounds/b-2.png", "variant": 2, "size": null, '
        f'"format": null, {png}, "bytes": 3, "contentType": "image/png"}}]}}'
    )
    assert json.dumps(view.model_dump(mode="json", by_alias=True)) == expected


def _manifest() -> Manifest:
    assets, steps = _rows(uuid.uuid4())
    return build_manifest(
        sku="SKU-7",
        sha256=SHA,
        theme="default",
        source_url="https://user:pw@cdn.example/o.jpg?token=t",
        assets=assets,
        steps=steps,
        cost_usd=0.12,
        timestamp=T0,
    )


def test_manifest_entries_keep_their_published_names_and_order() -> None:
    doc = json.loads(_manifest().model_dump_json(by_alias=True))
    assert list(doc) == [
        "sku",
        "sha256",
        "theme",
        "timestamp",
        "assets",
        "steps",
        "metadata",
        "quality",
        "shopify",
    ]
    assert doc["assets"]["cutout"] == {
        "key": "cutouts/c.png",
        "width": 8,
        "height": 6,
        "bytes": 5,
        "contentType": "image/png",
        "sha256": SHA,
        "variant": None,
        "size": None,
        "format": None,
        "provider": "freepik",
    }
    assert list(doc["assets"]["cutout"]) == [
        "key",
        "width",
        "height",
        "bytes",
        "contentType",
        "sha256",
        "variant",
        "size",
        "format",
        "provider",
    ]
    original = doc["assets"]["original"]
    assert list(original)[-1] == "url" and original["url"] == "https://cdn.example/o.jpg?token=***"
    assert doc["assets"]["backgrounds"][0]["provider"] == "freepik-mystic"  # per variant
    assert doc["steps"][0] == {
        "step": "remove_background",
        "variant": 0,
        "state": "COMPLETED",
        "ms": 40.5,
        "costUsd": 0.12,
        "provider": "freepik",
        "attempts": 2,
        "details": {"model": "m"},
    }
    assert list(doc["steps"][0]) == [
        "step",
        "variant",
        "state",
        "ms",
        "costUsd",
        "provider",
        "attempts",
        "details",
    ]
    assert doc["metadata"] == {
        "totalAssets": 2,
        "totalFileSize": 8,
        "processingTime": 41.5,
        "cost": 0.12,
    }


def test_a_manifest_read_back_is_written_again_byte_for_byte() -> None:
    # The publish step reads the stored manifest and writes it again with its shopify section.
    text = _manifest().model_dump_json(by_alias=True, indent=2)
    assert Manifest.model_validate_json(text).model_dump_json(by_alias=True, indent=2) == text


def test_recording_an_asset_writes_and_rewrites_every_column(sqlite_url: str) -> None:
    job_id = _stored_job(sqlite_url)
    cutout = _rows(job_id)[0][1]
    with session_scope(sqlite_url) as s:
        stored = s.exec(select(Asset).where(Asset.key == cutout.key)).one()
        assert jobs.AssetRecord.model_validate(stored) == jobs.AssetRecord.model_validate(cutout)
    smaller = jobs.AssetRecord(kind=cutout.kind, key=cutout.key, content_type="image/webp", bytes=4)
    with session_scope(sqlite_url) as s:
        jobs.record_assets(s, job_id=job_id, assets=[smaller])
    with session_scope(sqlite_url) as s:
        row = s.exec(select(Asset).where(Asset.key == cutout.key)).one()
        # Columns the new record leaves at their defaults are cleared, not kept from before.
        assert jobs.AssetRecord.model_validate(row) == smaller
        assert (row.width, row.sha256, row.job_id) == (None, None, job_id)


def test_the_migrations_create_exactly_the_tables_the_models_declare(sqlite_url: str) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from sqlmodel import SQLModel

    from core.db import get_engine

    with get_engine(sqlite_url).connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, SQLModel.metadata) == []

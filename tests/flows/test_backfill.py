"""Backfills: 20 rows through the backfill flow, CSV validation, outcome counting."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path

import pytest

from core.errors import InputError
from deployments.backfill_cli import read_csv
from flows.backfill import BackfillRow, backfill, known_images, outcomes_for
from tests.helpers.http_server import Reply, Script, serve
from tests.helpers.images import encoded, product_photo

pytestmark = pytest.mark.xdist_group("prefect")


def cutout_png(width: int, height: int) -> bytes:
    """A product on a transparent background: the passthrough segmenter keeps its alpha."""
    from PIL import Image

    canvas = Image.new("RGBA", (width, height), (0, 0, 0, 0))
    canvas.paste(product_photo((width // 2, height // 2)), (width // 4, height // 4))
    return encoded(canvas, "PNG")


@pytest.fixture
def fast_pipeline(monkeypatch: pytest.MonkeyPatch) -> None:
    """Orchestration is under test here: the passthrough segmenter and the smallest master."""
    monkeypatch.setenv("PACKSHOT_MASTER_SIZE", "1200")
    monkeypatch.setenv("PACKSHOT_SEGMENTER", "passthrough")
    from core.settings import get_settings

    get_settings.cache_clear()


def test_backfill_of_20_rows_processes_every_image(fast_pipeline: None) -> None:
    photos = [cutout_png(320 + 8 * i, 260) for i in range(4)]
    script = Script()
    for i, data in enumerate(photos):
        script.add(f"/p{i}.png", Reply(200, data))
    since = datetime.now(UTC)
    with serve(script) as base:
        rows = [
            BackfillRow(
                sku=f"BF-{n:02d}",
                image_url=f"{base}/p{n % 4}.png",
                sha256=hashlib.sha256(photos[n % 4]).hexdigest() if n % 2 else None,
            )
            for n in range(19)
        ]
        rows.append(BackfillRow(sku="BF-BAD", image_url=f"{base}/missing.jpg"))
        result = backfill(rows=rows, theme="white", chunk_size=50)
    assert result == {"images": 20, "DONE": 19, "FAILED": 1}
    # the bad row never got a job (its sha256 was never known): the flow counted it FAILED
    assert outcomes_for(rows, "white", since) == {"DONE": 19, "PENDING": 1}
    assert len(known_images()) == 19


def test_rerendering_a_theme_reuses_cutouts(fast_pipeline: None) -> None:
    import uuid

    from sqlmodel import select

    from core.db import session_scope
    from core.settings import get_settings
    from core.tables import JobStep

    data = cutout_png(300, 240)
    script = Script()
    script.add("/a.jpg", Reply(200, data))
    with serve(script) as base:
        rows = [BackfillRow(sku=f"RR-{n}", image_url=f"{base}/a.jpg") for n in range(3)]
        assert backfill(rows=rows, theme="white") == {"images": 3, "DONE": 3}
        result = backfill(theme="white", all_images=True)
    assert result == {"images": 3, "DONE": 3}
    with session_scope(get_settings().database_url) as session:
        steps = session.exec(select(JobStep)).all()
    by_step: dict[str, set[str]] = {}
    for row in steps:
        by_step.setdefault(row.step, set()).add(row.state)
    assert by_step["remove_background"] == {"SKIPPED"}  # the re-render reused every cutout
    assert by_step["generate_backgrounds"] == {"COMPLETED"}  # …and rendered the theme again
    assert script.hits["/a.jpg"] == 3
    assert all(isinstance(row.job_id, uuid.UUID) for row in steps)


def test_csv_rows_are_validated_with_line_numbers(tmp_path: Path) -> None:
    good = tmp_path / "good.csv"
    good.write_text(
        "sku,image_url,sha256,theme\nA1,https://cdn.example/a.jpg,,white\n12345,https://cdn.example/b.jpg\n"
    )
    rows = read_csv(good, "default", None)
    assert [(r.sku, r.theme) for r in rows] == [("A1", "white"), ("12345", "default")]
    bad = tmp_path / "bad.csv"
    bad.write_text("A1,https://cdn.example/a.jpg\nB 2,https://cdn.example/b.jpg\n")
    with pytest.raises(InputError, match="line 2: sku"):
        read_csv(bad, "default", None)
    local = tmp_path / "local.csv"
    local.write_text("A1,/etc/passwd\n")
    with pytest.raises(InputError, match="line 1: image_url must be http"):
        read_csv(local, "default", None)
    theme = tmp_path / "theme.csv"
    theme.write_text("A1,https://cdn.example/a.jpg,,nope\n")
    with pytest.raises(InputError, match="line 1: unknown theme"):
        read_csv(theme, "default", None)


def test_backfill_command_validates_and_asks_before_spending(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from core.settings import get_settings
    from deployments.cli import app

    runner = CliRunner()
    bad = tmp_path / "bad.csv"
    bad.write_text("A1,https://cdn.example/a.jpg\nB 2,https://cdn.example/b.jpg\n")
    result = runner.invoke(app, ["backfill", "--csv", str(bad)])
    assert result.exit_code == 2 and "line 2" in result.output
    assert runner.invoke(app, ["backfill"]).exit_code == 2  # neither --csv nor --all

    monkeypatch.setenv("PACKSHOT_BACKGROUNDS", "freepik-mystic")
    monkeypatch.setenv("PACKSHOT_FREEPIK_API_KEY", "fpk-test-key-123")
    monkeypatch.setenv("PACKSHOT_COST_CONFIRM_USD", "0.01")
    get_settings.cache_clear()
    good = tmp_path / "good.csv"
    good.write_text("".join(f"S{n},https://cdn.example/{n}.jpg\n" for n in range(5)))
    result = runner.invoke(app, ["backfill", "--csv", str(good)], input="n\n")
    assert result.exit_code == 1, result.output
    assert "estimated cost $" in result.output and "cancelled" in result.output
    assert "fpk-test-key-123" not in result.output


def test_backfill_fans_chunks_out_to_child_runs(fast_pipeline: None) -> None:
    """Run as the deployment, with one image per chunk: two chunks go to child runs of the same
    deployment (executed as a worker would), the parent takes the third, every image gets its
    job, and each job names the flow run that processed it."""
    from prefect import get_client
    from sqlmodel import select

    from core.db import session_scope
    from core.settings import get_settings
    from core.tables import Job
    from flows.trigger import BACKFILL_DEPLOYMENT
    from tests.helpers.deployed import deploy, stand_in_worker

    deployment_id = deploy(BACKFILL_DEPLOYMENT, "flows/backfill.py:backfill")
    photos = [cutout_png(300 + 8 * i, 240) for i in range(3)]
    script = Script()
    for i, data in enumerate(photos):
        script.add(f"/f{i}.png", Reply(200, data))
    with serve(script) as base:
        rows = [{"sku": f"FAN-{i}", "image_url": f"{base}/f{i}.png"} for i in range(3)]
        params = {"rows": rows, "theme": "white", "chunk_size": 1, "max_parallel": 3}
        with get_client(sync_client=True) as client:
            parent = client.create_flow_run_from_deployment(deployment_id, parameters=params)
        with stand_in_worker(deployment_id, backfill) as worker:
            result = worker.wait(parent.id, timeout=150)
            children = [run for run in worker.executed if run != parent.id]
            for child in children:
                assert worker.wait(child, timeout=30) == {"images": 1, "DONE": 1}
    assert result == {"images": 3, "DONE": 3}
    assert len(children) == 2
    with get_client(sync_client=True) as client:
        for child in children:
            run = client.read_flow_run(child)
            assert run.parent_task_run_id is not None  # a child of the parent run
            assert len(run.parameters["chunk"]) == 1
    with session_scope(get_settings().database_url) as session:
        jobs = session.exec(select(Job)).all()
    assert sorted((job.sku, job.status) for job in jobs) == [(f"FAN-{i}", "DONE") for i in range(3)]
    assert {job.flow_run_id for job in jobs} == {str(parent.id), *map(str, children)}
    assert all(script.hits[f"/f{i}.png"] == 1 for i in range(3))

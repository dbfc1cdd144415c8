"""Overview and Jobs pages through AppTest: empty and error states, statistics, filters, pages."""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime, timedelta

from core import jobs
from core.db import session_scope, upgrade_schema
from core.schemas import ImageJobSpec
from tests.dashboard.rendered import shown


def _links(at) -> list[str]:
    """Labels of the job-table links (the SKUs), in table order."""
    labels = [shown(link.proto.label) for link in at.get("page_link")]
    return [label for label in labels if " · " not in label]


def _metrics(at) -> dict[str, str]:
    return {metric.label: metric.value for metric in at.metric}


def _add_jobs(
    database_url: str, count: int, *, sku: str = "BULK", start: datetime | None = None
) -> list[uuid.UUID]:
    """``count`` NEW jobs created one minute apart, newest last."""
    upgrade_schema(database_url)
    start = start or datetime.now(UTC) - timedelta(minutes=count)
    ids = []
    with session_scope(database_url) as session:
        for n in range(count):
            sha = hashlib.sha256(f"{sku}{n}".encode()).hexdigest()
            spec = ImageJobSpec(
                sku=f"{sku}-{n:03d}", image_url="https://cdn.example.com/x.jpg", sha256=sha
            )
            job, _ = jobs.get_or_create_job(session, spec=spec)
            job.created_at = start + timedelta(minutes=n)
            ids.append(job.id)
    return ids


def test_empty_database_without_tables_says_how_to_start(app):
    at = app()
    text = " ".join(info.value for info in at.info)
    assert "No jobs yet" in text and "packshot demo" in text and "packshot process" in text
    assert not at.error and not at.metric


def test_empty_database_with_tables_shows_the_empty_state(app, settings):
    upgrade_schema(settings.database_url)
    at = app()
    assert "No jobs yet" in at.info[0].value
    assert not at.get("page_link")


def test_unreachable_database_is_an_error_state_not_a_crash(app, monkeypatch):
    from core import settings as settings_module

    # Port 1 refuses connections at once: a database server that is down.
    monkeypatch.setenv(
        "PACKSHOT_DATABASE_URL", "postgresql+psycopg://packshot:s3cret@127.0.0.1:1/packshot"
    )
    settings_module.get_settings.cache_clear()
    at = app()
    assert at.error, "expected an error element"
    message = at.error[0].value
    assert "Database unreachable" in message and "127.0.0.1:1" in message
    assert "s3cret" not in message
    assert [button.label for button in at.button] == ["Try again"]


def test_counts_costs_failures_and_table_for_done_failed_and_running_jobs(
    app, done_job, failed_job, running_job
):
    at = app()
    metrics = _metrics(at)
    assert metrics["Jobs"] == "3" and metrics["Done"] == "1"
    assert metrics["Failed"] == "1" and metrics["In progress"] == "1"
    # Each seeded job paid $0.0125 for its cutout, today.
    assert metrics["Cost today"] == "$0.0375" and metrics["Cost this week"] == "$0.0375"
    labels = [shown(link.proto.label) for link in at.get("page_link")]
    failures = [label for label in labels if " · " in label]
    assert failures == ["MUG-7 · white"]
    assert any("segmenter timed out" in text.value for text in at.text)
    assert sorted(_links(at)) == ["LAMP-1", "MUG-7", "SHIRT-3"]
    html = " ".join(node.value for node in at.get("html"))
    # Time per step: three completed downloads at 48 ms, two composite runs per finished job.
    assert "<td" in html and ">download</td>" in html and ">48 ms</td>" in html
    assert (
        html.index(">download</td>")
        < html.index(">remove_background</td>")
        < html.index(">publish</td>")
    )
    # Jobs by status and jobs per hour.
    assert (
        'title="DONE: 1"' in html
        and 'title="FAILED: 1"' in html
        and 'title="BACKGROUND_READY: 1"' in html
    )
    assert html.count("UTC: ") == 24 and "3 jobs" in html


def test_table_links_open_the_job_page(app, done_job):
    at = app()
    link = next(link for link in at.get("page_link") if shown(link.proto.label) == "LAMP-1")
    assert link.proto.query_string == f"job={done_job}"
    assert link.proto.page.endswith("job")


def test_status_sku_theme_and_date_filters(app, done_job, failed_job, running_job):
    at = app()
    at.multiselect(key="jobs-status").set_value(["FAILED"]).run()
    assert _links(at) == ["MUG-7"]

    at.multiselect(key="jobs-status").set_value([]).run()
    at.text_input(key="jobs-sku").input("lamp").run()  # case-insensitive "contains"
    assert _links(at) == ["LAMP-1"]

    at.text_input(key="jobs-sku").input("").run()
    at.multiselect(key="jobs-theme").set_value(["white"]).run()
    assert _links(at) == ["MUG-7"]

    at.multiselect(key="jobs-theme").set_value([]).run()
    yesterday = datetime.now(UTC).date() - timedelta(days=1)
    at.date_input(key="jobs-dates").set_value((yesterday - timedelta(days=5), yesterday)).run()
    assert _links(at) == []
    assert "No job matches these filters." in [info.value for info in at.info]

    at.button(key="jobs-clear").click().run()
    assert sorted(_links(at)) == ["LAMP-1", "MUG-7", "SHIRT-3"]


def test_sku_filter_treats_wildcards_literally(app, settings):
    _add_jobs(settings.database_url, 2, sku="A_B")
    _add_jobs(settings.database_url, 2, sku="AXB")
    at = app()
    at.text_input(key="jobs-sku").input("a_b").run()
    assert sorted(_links(at)) == ["A_B-000", "A_B-001"]


def test_pagination_newest_first_and_reset_when_a_filter_changes(app, settings):
    _add_jobs(settings.database_url, 40)
    at = app()
    assert _links(at)[:2] == ["BULK-039", "BULK-038"]
    assert "Jobs 1–15 of 40, newest first" in [caption.value for caption in at.caption]
    pager = at.get("pagination")[0]
    assert pager.num_pages == 3
    pager.select(3).run()
    assert _links(at) == [f"BULK-{n:03d}" for n in range(9, -1, -1)]
    assert "Jobs 31–40 of 40, newest first" in [caption.value for caption in at.caption]

    at.text_input(key="jobs-sku").input("BULK-03").run()
    assert _links(at) == [f"BULK-{n:03d}" for n in range(39, 29, -1)]
    assert not at.get("pagination"), "ten matches fit on one page"


def test_jobs_page_page_size(app, settings):
    _add_jobs(settings.database_url, 40)
    at = app()
    at.switch_page("app_pages/jobs.py").run()
    assert len(_links(at)) == 25 and at.get("pagination")[0].num_pages == 2
    at.segmented_control(key="jobs-page-size").set_value(50).run()
    assert len(_links(at)) == 40 and not at.get("pagination")


def test_filters_survive_a_visit_to_a_job_page(app, done_job, failed_job):
    at = app()
    at.multiselect(key="jobs-status").set_value(["DONE"]).run()
    at.switch_page("app_pages/job_detail.py")
    at.query_params["job"] = str(done_job)
    at.run()
    at.query_params.clear()
    at.switch_page("app_pages/overview.py").run()
    assert at.multiselect(key="jobs-status").value == ["DONE"]
    assert _links(at) == ["LAMP-1"]


def _refresh_requests(monkeypatch) -> list[list[float]]:
    """Per AppTest run, the re-run intervals the page asked the browser for (``auto_rerun``)."""
    from streamlit.testing.v1.local_script_runner import LocalScriptRunner

    runs: list[list[float]] = []
    real_run = LocalScriptRunner.run

    def run(self, *args, **kwargs):
        tree = real_run(self, *args, **kwargs)
        sent = [m.auto_rerun.interval for m in self.forward_msgs() if m.HasField("auto_rerun")]
        runs.append(sent)
        return tree

    monkeypatch.setattr(LocalScriptRunner, "run", run)
    return runs


def test_live_refresh_can_be_paused(app, done_job, monkeypatch):
    runs = _refresh_requests(monkeypatch)
    at = app()
    assert runs[-1] == [5.0]  # live: the jobs fragment is re-run every 5 s
    at.toggle(key="live-refresh").set_value(False).run()
    assert runs[-1] == []  # paused: nothing asks for a re-run
    assert _links(at) == ["LAMP-1"]
    at.toggle(key="live-refresh").set_value(True).run()
    assert runs[-1] == [5.0]


def test_new_jobs_show_up_without_losing_the_filter(app, settings, done_job):
    at = app()
    at.text_input(key="jobs-sku").input("BULK").run()
    assert _links(at) == []
    _add_jobs(settings.database_url, 2)
    import streamlit as st

    st.cache_data.clear()  # the 3-second cache would hide them for up to 3 s
    at.run()
    assert _links(at) == ["BULK-001", "BULK-000"]
    assert at.text_input(key="jobs-sku").value == "BULK"

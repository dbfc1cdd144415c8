"""Dashboard speed with a large catalogue: 10,000 jobs in the tables, one job with its 26 files.

Seeds a fresh SQLite database (or ``--database-url``) in bulk, plus one DONE job written through
``core.jobs`` with full-size files (1600 px masters, 1200/800/200 px derivatives in JPEG, WebP
and AVIF). Then times:

* AppTest script runs (server-side render) of the overview and of the job page on its
  Derivatives tab (the heaviest: 18 thumbnails), cold (every cache cleared: thumbnails are
  decoded and scaled again) and warm;
* with ``/usr/bin/chromium`` present, the same pages in a real ``streamlit run`` server with
  headless Chromium: from navigation until every image has loaded (naturalWidth > 0).

    .venv/bin/python benchmarks/dashboard.py [--jobs 10000] [--runs 5] [--database-url URL]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.helpers.ports import free_port  # noqa: E402

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
STEPS = [
    ("download", 0, 45.0),
    ("remove_background", 0, 3300.0),
    ("generate_backgrounds", 0, 350.0),
    ("composite", 1, 540.0),
    ("composite", 2, 550.0),
    ("derivatives", 1, 1800.0),
    ("derivatives", 2, 1820.0),
    ("manifest", 0, 35.0),
    ("publish", 0, 1.0),
]


def _bulk_jobs(database_url: str, count: int) -> None:
    """``count`` jobs over the last 7 days (85% DONE, 10% FAILED, 5% running) with their steps."""
    from sqlalchemy import insert

    from core.db import get_engine
    from core.tables import Job, JobStep

    rng = random.Random(7)
    now = datetime.now(UTC)
    jobs, steps = [], []
    for n in range(count):
        created = now - timedelta(seconds=rng.uniform(60, 7 * 86400))
        draw = rng.random()
        status = "DONE" if draw < 0.85 else "FAILED" if draw < 0.95 else "COMPOSITED"
        job_id = uuid.uuid4()
        done_steps = STEPS if status == "DONE" else STEPS[:4]
        finished = created + timedelta(seconds=8) if status != "COMPOSITED" else None
        jobs.append(
            {
                "id": job_id,
                "sku": f"SKU-{n:05d}",
                "sha256": hashlib.sha256(str(n).encode()).hexdigest(),
                "theme": rng.choice(["default", "white", "studio"]),
                "source_url": f"https://cdn.example.com/{n}.jpg",
                "status": status,
                "flow_run_id": str(uuid.uuid4()),
                "error": "segmenter timed out after 30 s" if status == "FAILED" else None,
                "error_step": "composite" if status == "FAILED" else None,
                "error_type": "ProviderUnavailable" if status == "FAILED" else None,
                "cost_usd": 0.0125,
                "created_at": created,
                "started_at": created,
                "finished_at": finished,
                "updated_at": finished or created,
            }
        )
        for step, variant, ms in done_steps:
            steps.append(
                {
                    "job_id": job_id,
                    "step": step,
                    "variant": variant,
                    "state": "COMPLETED",
                    "attempts": 1,
                    "started_at": created,
                    "finished_at": created + timedelta(milliseconds=ms),
                    "duration_ms": ms * rng.uniform(0.8, 1.3),
                    "cost_usd": 0.0125 if step == "remove_background" else 0.0,
                    "provider": "pillow",
                }
            )
    with get_engine(database_url).begin() as conn:
        conn.execute(insert(Job.__table__), jobs)
        conn.execute(insert(JobStep.__table__), steps)


def _median_ms(samples: list[float]) -> float:
    return round(statistics.median(samples) * 1000, 1)


def _apptest_times(job_id: uuid.UUID, runs: int) -> dict[str, float]:
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    from dashboard.launch import APP_PATH

    def render(**query: str) -> float:
        at = AppTest.from_file(str(APP_PATH), default_timeout=120)
        at.query_params.update(query)
        started = time.perf_counter()
        at.run()
        elapsed = time.perf_counter() - started
        assert not at.exception, [e.value for e in at.exception]
        return elapsed

    render()  # imports and the first database connection are not part of any page's time
    timings: dict[str, list[float]] = {"overview": [], "job_cold": [], "job_warm": []}
    job = {"job": str(job_id), "tab": "Derivatives"}
    for _ in range(runs):
        st.cache_data.clear()
        timings["overview"].append(render())
        st.cache_data.clear()
        timings["job_cold"].append(render(**job))
        timings["job_warm"].append(render(**job))
    return {name: _median_ms(values) for name, values in timings.items()}


def _browser_times(job_id: uuid.UUID, runs: int) -> dict[str, float]:
    import httpx
    from playwright.sync_api import sync_playwright

    from core.settings import get_settings
    from dashboard.launch import streamlit_argv, streamlit_env

    settings = get_settings()
    port = free_port()
    server = subprocess.Popen(
        streamlit_argv(settings, port=port),
        env=streamlit_env(settings, os.environ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                if httpx.get(f"{base}/_stcore/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(120_000)
            job_url = f"{base}/job?job={job_id}&tab=Derivatives"
            _load(page, job_url, 18)  # warm-up: the server imports its modules
            _load(page, base, 0, text="Jobs by status")
            timings: dict[str, list[float]] = {"job": [], "overview": []}
            for _ in range(runs):
                timings["job"].append(_load(page, job_url, 18))
                timings["overview"].append(_load(page, base, 0, text="Jobs by status"))
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=30)
    return {f"browser_{name}": _median_ms(values) for name, values in timings.items()}


def _load(page, url: str, images: int, text: str | None = None) -> float:
    """Seconds from navigation until the page shows ``text`` or ``images`` loaded images."""
    started = time.perf_counter()
    page.goto(url, wait_until="domcontentloaded")
    if text:
        page.get_by_text(text).wait_for()
        page.get_by_role("link", name="SKU-", exact=False).first.wait_for()
    else:
        page.wait_for_function(
            """count => {
                const images = [...document.querySelectorAll('[data-testid="stImage"] img')];
                return images.length === count && images.every(i => i.complete && i.naturalWidth > 0);
            }""",
            arg=images,
        )
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--database-url", default=None, help="default: a fresh SQLite file")
    parser.add_argument("--no-browser", action="store_true", help="AppTest timings only")
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="packshot-dashboard-bench-"))
    os.environ["PACKSHOT_HOME"] = str(home)
    if args.database_url:
        os.environ["PACKSHOT_DATABASE_URL"] = args.database_url
    from core.db import upgrade_schema
    from core.settings import get_settings
    from core.storage import new_store
    from tests.dashboard.seed import REAL, seed_job

    settings = get_settings()
    upgrade_schema(settings.database_url)
    started = time.perf_counter()
    _bulk_jobs(settings.database_url, args.jobs - 1)
    job_id = seed_job(
        settings.database_url, new_store(settings.store_url), sku="LAMP-1", sizes=REAL
    )
    print(f"seeded {args.jobs} jobs in {time.perf_counter() - started:.1f} s under {home}")

    results = _apptest_times(job_id, args.runs)
    print(f"AppTest medians of {args.runs}: {results}")
    if CHROMIUM.exists() and not args.no_browser:
        browser = _browser_times(job_id, args.runs)
        print(f"Chromium medians of {args.runs}: {browser}")
        results.update(browser)
    extra = " ".join(
        f"{name}_ms={value:.0f}" for name, value in results.items() if name.startswith("browser")
    )
    print(
        f"result: jobs={args.jobs} job_page_ms={results['job_cold']:.0f} "
        f"job_page_warm_ms={results['job_warm']:.0f} overview_ms={results['overview']:.0f} {extra}".rstrip()
    )


if __name__ == "__main__":
    main()

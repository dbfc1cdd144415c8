"""A Packshot site on this machine, started the way operators start one, for tests and benchmarks.

``production_site()`` is ``packshot up --profile production`` in-process
(``deployments.stack.Stack``): a Prefect server on a throwaway PostgreSQL database, process
workers, the webhook with its dispatcher and recovery loop; the job tables on another throwaway
PostgreSQL database; assets and Prefect results in moto's S3 server, reached through a proxy that
can answer like an overloaded S3; the photos on a loopback "3JMS CDN". ``embedded=True`` starts
the embedded profile instead (SQLite, a local folder, Prefect on SQLite) with the same handles.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
from sqlmodel import Session, col, select

from core.db import get_engine
from core.settings import Settings
from core.tables import Job, JobStatus
from deployments import proctree
from deployments.demo import serve_folder
from deployments.stack import Stack
from tests.helpers.images import jpeg_bytes, varied_product
from tests.helpers.ports import free_ports
from tests.helpers.postgres import temporary_database
from tests.helpers.s3_faults import S3FaultProxy
from webhook.security import sign

BUCKET = "packshot-site"
SECRET = "integration-webhook-secret-5c1e"
TERMINAL = (JobStatus.DONE, JobStatus.FAILED)
T = TypeVar("T")


@dataclass
class Site:
    """Handles on the running site, for tests to drive and inspect it."""

    stack: Stack
    settings: Settings
    cdn_dir: Path
    cdn_url: str
    s3: S3FaultProxy | None = None
    moto_url: str | None = None
    prefect_db: str | None = None
    jobs_db: str | None = None
    http: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=30))

    # --- inputs -------------------------------------------------------------------------------
    def photo(self, n: int) -> tuple[str, str]:
        """Put product photo ``n`` on the CDN; its URL and sha256."""
        data = jpeg_bytes(varied_product(n))
        name = f"photo-{n}.jpg"
        (self.cdn_dir / name).write_bytes(data)
        return f"{self.cdn_url}/{name}", hashlib.sha256(data).hexdigest()

    def deliver(
        self, sku: str, n: int, theme: str = "default", photo: tuple[str, str] | None = None
    ) -> httpx.Response:
        """POST the signed 3JMS event for photo ``n`` as ``sku`` (``photo``: already on the CDN)."""
        url, sha = photo or self.photo(n)
        body = json.dumps({"sku": sku, "imageUrl": url, "sha256": sha, "theme": theme}).encode()
        return self.http.post(
            f"{self.stack.webhook_url}/api/webhooks/3jms/images",
            content=body,
            headers={"content-type": "application/json", "X-3JMS-Signature": sign(SECRET, body)},
        )

    # --- outputs ------------------------------------------------------------------------------
    def jobs(self, ids: list[str]) -> dict[str, Job]:
        """The job rows of ``ids``."""
        wanted = [uuid.UUID(i) for i in ids]
        with Session(get_engine(self.settings.database_url)) as session:
            rows = session.exec(select(Job).where(col(Job.id).in_(wanted))).all()
            return {str(row.id): row for row in rows}

    def wait_until_ended(self, ids: list[str], timeout: float) -> dict[str, Job]:
        """Block until every job is DONE or FAILED; the rows then."""
        last: dict[str, Job] = {}

        def ended() -> dict[str, Job] | None:
            last.update(self.jobs(ids))
            done = len(last) == len(ids) and all(r.status in TERMINAL for r in last.values())
            return dict(last) if done else None

        def waiting() -> str:
            pending = {i: r.status for i, r in last.items() if r.status not in TERMINAL}
            return f"jobs not ended: {pending}"

        return _until(ended, timeout=timeout, every=0.5, what=waiting)

    def wait_for_jobs(
        self, ids: list[str], condition: Callable[[dict[str, Job]], bool], timeout: float, what: str
    ) -> dict[str, Job]:
        """Block until ``condition`` holds for the job rows of ``ids``; the rows then."""

        def met() -> dict[str, Job] | None:
            rows = self.jobs(ids)
            return rows if condition(rows) else None

        return _until(met, timeout=timeout, every=0.2, what=lambda: what)

    def wait_for_status(self, job_id: str, statuses: set[str], timeout: float) -> str:
        """Block until the job reaches one of ``statuses``; the status seen."""

        def reached() -> str | None:
            row = self.jobs([job_id]).get(job_id)
            return str(row.status) if row is not None and row.status in statuses else None

        return _until(
            reached, timeout=timeout, every=0.05, what=lambda: f"job {job_id} not in {statuses}"
        )

    def objects(self, prefix: str = "") -> dict[str, dict[str, Any]]:
        """Every object under ``prefix`` in the bucket (read from moto directly)."""
        assert self.moto_url is not None, "the embedded profile has no bucket"
        client = _moto_client(self.moto_url)
        found: dict[str, dict[str, Any]] = {}
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix):
            for item in page.get("Contents", []):
                found[item["Key"]] = item
        return found

    def online_workers(self) -> list[str]:
        """Names of the workers Prefect sees polling the work pool."""

        async def read() -> list[str]:
            from prefect.client.orchestration import PrefectClient

            async with PrefectClient(self.stack.api_url, auth_string=self.stack.auth) as client:
                workers = await client.read_workers_for_work_pool("local")
            return [w.name for w in workers if str(w.status).upper().endswith("ONLINE")]

        return asyncio.run(read())

    def run_logs(self, flow_run_ids: list[str]) -> list[str]:
        """Messages the flow runs shipped to Prefect (WARNING and above on this site)."""

        async def read() -> list[str]:
            from prefect.client.orchestration import PrefectClient
            from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

            ids = [uuid.UUID(i) for i in flow_run_ids]
            async with PrefectClient(self.stack.api_url, auth_string=self.stack.auth) as client:
                logs = await client.read_logs(
                    LogFilter(flow_run_id=LogFilterFlowRunId(any_=ids)), limit=200
                )
            return [log.message for log in logs]

        return asyncio.run(read())

    def settled_flow_runs(self, job_ids: list[str], timeout: float = 120) -> dict[str, list[Any]]:
        """``flow_runs`` once every run is in a final state.

        A job is DONE as soon as the flow wrote it; Prefect marks the run Completed a moment
        later, once the flow has returned and its result is stored.
        """

        def settled() -> dict[str, list[Any]] | None:
            runs = self.flow_runs(job_ids)
            states = [run.state for found in runs.values() for run in found]
            return runs if all(s is not None and s.is_final() for s in states) else None

        return _until(settled, timeout=timeout, every=0.5, what=lambda: "flow runs not final")

    def flow_runs(self, job_ids: list[str]) -> dict[str, list[Any]]:
        """Flow runs in Prefect per job (matched on the ``job_id`` parameter)."""

        async def read() -> dict[str, list[Any]]:
            from prefect.client.orchestration import PrefectClient

            found: dict[str, list[Any]] = {i: [] for i in job_ids}
            async with PrefectClient(self.stack.api_url, auth_string=self.stack.auth) as client:
                offset = 0
                while True:
                    page = await client.read_flow_runs(limit=200, offset=offset)
                    for run in page:
                        job = run.parameters.get("job_id")
                        if job in found:
                            found[job].append(run)
                    if len(page) < 200:
                        return found
                    offset += 200

        return asyncio.run(read())


def _until(
    check: Callable[[], T | None], *, timeout: float, every: float, what: Callable[[], str]
) -> T:
    """``check()`` every ``every`` seconds until it returns something; fails after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found is not None:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"{what()} after {timeout:.0f} s")
        time.sleep(every)


def _site_env(home: Path, workers: int) -> dict[str, str]:
    prefect_port, webhook_port = free_ports(2)
    return {
        "PACKSHOT_HOME": str(home),
        "PACKSHOT_PROFILE": "embedded",
        "PACKSHOT_WEBHOOK_SECRET": SECRET,
        "PACKSHOT_PREFECT_PORT": str(prefect_port),
        "PACKSHOT_WEBHOOK_PORT": str(webhook_port),
        "PACKSHOT_WORKERS": str(workers),
        "PACKSHOT_WORKER_LIMIT": "2",
        # The CDN stand-in is on loopback.
        "PACKSHOT_ALLOW_PRIVATE_SOURCES": "true",
        # The smallest master that still covers the 1200 px hero: less CPU per photo.
        "PACKSHOT_MASTER_SIZE": "1200",
        # Faults must be detected and retried within a test's patience, not production's.
        "PREFECT_FLOWS_HEARTBEAT_FREQUENCY": "30",
        "PACKSHOT_ZOMBIE_AFTER_S": "45",
        "PACKSHOT_RECOVER_INTERVAL_S": "2",
        "PACKSHOT_RETRY_BACKOFF_S": "1",
        # These sites test the hand-off chain to DONE; the drawn photos would be held for review.
        "PACKSHOT_REVIEW": "off",
        "PACKSHOT_DISPATCH_BACKOFF_MAX_S": "2",
        "PREFECT_LOGGING_LEVEL": "WARNING",
    }


def _production_env(prefect_db: str, jobs_db: str, s3_url: str) -> dict[str, str]:
    return {
        "PACKSHOT_PROFILE": "production",
        "PACKSHOT_DATABASE_URL": jobs_db,
        "PACKSHOT_STORE_URL": f"s3://{BUCKET}/assets",
        "PACKSHOT_S3_ENDPOINT_URL": s3_url,
        "PACKSHOT_S3_REGION": "us-east-1",
        "PREFECT_API_DATABASE_CONNECTION_URL": prefect_db,
        # Production requires the Prefect API credentials (the embedded profile generates them).
        "PREFECT_API_AUTH_STRING": "packshot:integration-prefect-credentials",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }


def _moto() -> tuple[Any, str]:
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # a line per request otherwise

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    return server, f"http://{host}:{port}"


@contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextmanager
def _running(stack: Stack) -> Iterator[Stack]:
    supervisor = threading.Thread(target=stack.supervise, daemon=True)
    try:
        stack.start()
        # Supervised like `packshot up`: a worker that dies is started again.
        supervisor.start()
        yield stack
    finally:
        stack.stop()
        if supervisor.is_alive():
            supervisor.join(timeout=30)


@contextmanager
def production_site(
    root: Path, *, workers: int = 2, embedded: bool = False, env: dict[str, str] | None = None
) -> Iterator[Site]:
    """Start a site under ``root``; stopped, and its databases dropped, when the block ends.

    ``env`` overrides the site's settings (``PACKSHOT_*`` and Prefect's own variables).
    """
    with ExitStack() as stack:
        cdn_dir = root / "cdn"
        cdn_dir.mkdir(parents=True, exist_ok=True)
        cdn, cdn_url = serve_folder(cdn_dir)
        stack.callback(cdn.shutdown)
        values = _site_env(root / "home", workers)
        extra: dict[str, Any] = {}
        if not embedded:
            prefect_url = stack.enter_context(temporary_database())
            jobs_url = stack.enter_context(temporary_database())
            moto, moto_url = _moto()
            stack.callback(moto.stop)
            proxy = S3FaultProxy(moto_url)
            stack.callback(proxy.close)
            _create_bucket(moto_url)
            prefect_db = prefect_url.replace("+psycopg", "+asyncpg", 1)
            values |= _production_env(prefect_db, jobs_url, proxy.url)
            extra = {
                "s3": proxy,
                "moto_url": moto_url,
                "prefect_db": prefect_url.rsplit("/", 1)[1],
                "jobs_db": jobs_url.rsplit("/", 1)[1],
            }
        values |= env or {}
        stack.enter_context(_environment(values))
        # Settings from exactly this environment; the site runs its own Prefect server even
        # when the calling process has another one in PREFECT_API_URL.
        settings = Settings().model_copy(update={"prefect_api_url": None})
        running = stack.enter_context(
            _running(Stack(settings, services=("prefect", "worker", "webhook")))
        )
        yield Site(running, settings, cdn_dir, cdn_url, **extra)


def _create_bucket(moto_url: str) -> None:
    _moto_client(moto_url).create_bucket(Bucket=BUCKET)


def _moto_client(moto_url: str) -> Any:
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=moto_url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def kill_machine(site: Site, flow_run_id: str) -> str:
    """SIGKILL the worker running ``flow_run_id``, its warm engine and the run's command, as if
    its machine died.

    The command is found by the run id in its environment, its worker by parent pid. The run's
    process forked from the engine is not signalled: it must end because its command did.
    Returns the killed worker's service name (the supervisor starts a new one, as a machine's
    process manager would).
    """
    flow_pid = _pid_with_env("PREFECT__FLOW_RUN_ID", flow_run_id)
    parent = _parent(flow_pid)
    owner = next(
        s
        for s in site.stack.services
        if s.name.startswith("worker") and s.process is not None and s.process.pid == parent
    )
    assert owner.process is not None
    group = os.getpgid(owner.process.pid)
    os.kill(flow_pid, signal.SIGKILL)
    os.killpg(group, signal.SIGKILL)
    with contextlib.suppress(KeyError):  # a worker without a warm engine (not Linux)
        engine = site.stack.service(f"{owner.name}-engine").process
        if engine is not None:
            os.killpg(os.getpgid(engine.pid), signal.SIGKILL)
    return owner.name


def forked_runs(site: Site) -> list[proctree.Proc]:
    """The flow-run processes the stack's warm engines forked that still run (they carry the
    stack's marker, from the engine's environment)."""
    engines = {
        s.process.pid
        for s in site.stack.services
        if s.name.endswith("-engine") and s.process is not None
    }
    return [p for p in proctree.marked(site.stack.instance) if _parent_of(p.pid) in engines]


def _parent_of(pid: int) -> int | None:
    """``_parent``, or None once the process is gone."""
    with contextlib.suppress(OSError):
        return _parent(pid)
    return None


def _parent(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[1])


def _pid_with_env(name: str, value: str, timeout: float = 30) -> int:
    needle = f"{name}={value}".encode()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                environ = (entry / "environ").read_bytes()
            except OSError:
                continue
            if needle in environ.split(b"\0"):
                return int(entry.name)
        time.sleep(0.1)
    raise AssertionError(f"no process has {name}={value}")

"""The two profiles: what production requires, and what it adds to the processes it starts.

``embedded`` (default): one machine; SQLite, a local folder, Prefect on SQLite, results on disk.
``production``: the job tables on PostgreSQL, assets and Prefect results on S3, a Prefect server
on PostgreSQL, any number of workers on any number of machines. The machines share nothing but
the database, the bucket and the Prefect API, so every check here is about one of those three.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from core.errors import ConfigurationError
from core.settings import Settings
from dashboard.access import open_to_anyone_problem

__all__ = [
    "SERVICES",
    "ResultsLocation",
    "ensure_results_block",
    "problems",
    "results_location",
    "worker_env",
]

SERVICES = ("prefect", "worker", "webhook", "dashboard")
# Shortest Prefect API credentials production accepts.
MIN_AUTH_CHARS = 16
RESULTS_FOLDER = "prefect-results"


@dataclass(frozen=True)
class ResultsLocation:
    """Where Prefect keeps results: a bucket and a folder in it."""

    bucket: str
    folder: str


def results_location(settings: Settings) -> ResultsLocation | None:
    """The S3 location of Prefect's results, or None when they stay on local disk.

    ``PACKSHOT_RESULTS_URL`` wins; in production it defaults to the store's bucket, folder
    ``prefect-results`` (beside, never inside, the asset keys).
    """
    url = settings.results_url
    if url is None:
        if settings.profile != "production" or not settings.store_url.startswith("s3://"):
            return None
        return ResultsLocation(settings.store_url[5:].partition("/")[0], RESULTS_FOLDER)
    if not url.startswith("s3://") or not url[5:].partition("/")[0]:
        raise ConfigurationError("PACKSHOT_RESULTS_URL must look like s3://bucket/prefix")
    bucket, _, folder = url[5:].partition("/")
    return ResultsLocation(bucket, folder.strip("/"))


def _backend(url: str) -> str:
    try:
        return make_url(url).get_backend_name()
    except ArgumentError:
        return "unknown"


def _heartbeat_s() -> int | None:
    from prefect.settings import get_current_settings

    return get_current_settings().flows.heartbeat_frequency


def problems(settings: Settings, services: Collection[str]) -> list[str]:
    """What keeps ``settings`` from running ``services`` in their profile (empty: all good).

    Each message names the variable to change. The embedded profile has no requirements.
    """
    found: list[str] = []
    if settings.results_url is not None:
        try:
            results_location(settings)
        except ConfigurationError as exc:
            found.append(str(exc))
    if settings.profile != "production":
        return found
    if _backend(settings.database_url) != "postgresql":
        found.append(
            "PACKSHOT_DATABASE_URL must name PostgreSQL (postgresql+psycopg://…): "
            "workers on other machines cannot share a SQLite file"
        )
    if not settings.store_url.startswith("s3://"):
        found.append(
            "PACKSHOT_STORE_URL must be s3://bucket/prefix: a local folder is not shared "
            "between machines"
        )
    if "prefect" in services and not settings.prefect_api_url:
        server_db = settings.prefect_database_url
        if server_db is None or _backend(server_db.get_secret_value()) != "postgresql":
            found.append(
                "PREFECT_API_DATABASE_CONNECTION_URL must name PostgreSQL "
                "(postgresql+asyncpg://…) for the Prefect server: on SQLite, bursts of run "
                "creations fail (or set PREFECT_API_URL to a server started elsewhere)"
            )
    found += _secret_problems(settings, services)
    heartbeat = _heartbeat_s()
    if heartbeat is not None and settings.zombie_after_s <= heartbeat:
        found.append(
            f"PACKSHOT_ZOMBIE_AFTER_S ({settings.zombie_after_s}) must exceed the flow "
            f"heartbeat interval PREFECT_FLOWS_HEARTBEAT_FREQUENCY ({heartbeat} s), or every "
            "long run would be marked Crashed"
        )
    return found


def _secret_problems(settings: Settings, services: Collection[str]) -> list[str]:
    """The secrets production cannot run without."""
    found = []
    auth = settings.prefect_api_auth_string
    if auth is None or len(auth.get_secret_value()) < MIN_AUTH_CHARS:
        found.append(
            f"PREFECT_API_AUTH_STRING must be set (user:password, at least {MIN_AUTH_CHARS} "
            "characters, the same on every machine): whoever uses the Prefect API runs code "
            "on the workers"
        )
    if settings.secret_key is None:
        found.append(
            "PACKSHOT_SECRET_KEY must be set: it encrypts the credentials in source URLs at rest"
        )
    # Its length is checked with the settings themselves (a short one fails to load).
    if "webhook" in services and settings.webhook_secret is None:
        found.append("PACKSHOT_WEBHOOK_SECRET must be set: production refuses unsigned deliveries")
    dashboard = open_to_anyone_problem(settings) if "dashboard" in services else None
    if dashboard:
        found.append(dashboard)
    return found


def worker_env(settings: Settings) -> dict[str, str]:
    """Environment a worker hands to its flow runs: results on S3 when configured."""
    if results_location(settings) is None:
        return {}
    return {
        "PREFECT_RESULTS_DEFAULT_STORAGE_BLOCK": f"s3-bucket/{settings.results_block}",
        "PREFECT_RESULTS_PERSIST_BY_DEFAULT": "true",
    }


def ensure_results_block(settings: Settings) -> bool:
    """Create or update the ``S3Bucket`` block for results; False when results stay local.

    Without ``PACKSHOT_AWS_CREDENTIALS_BLOCK`` the block holds no keys: each machine uses its
    own standard AWS chain (environment, profile, instance role), so no secret is stored in
    Prefect's database.
    """
    location = results_location(settings)
    if location is None:
        return False
    from prefect_aws import AwsCredentials, S3Bucket
    from prefect_aws.client_parameters import AwsClientParameters

    if settings.aws_credentials_block:
        credentials = AwsCredentials.load(settings.aws_credentials_block, _sync=True)  # type: ignore[call-arg]
    else:
        credentials = AwsCredentials(
            region_name=settings.s3_region,
            aws_client_parameters=AwsClientParameters(endpoint_url=settings.s3_endpoint_url),
        )
    block = S3Bucket(
        bucket_name=location.bucket, bucket_folder=location.folder, credentials=credentials
    )
    block.save(settings.results_block, overwrite=True, _sync=True)  # type: ignore[call-arg]
    return True

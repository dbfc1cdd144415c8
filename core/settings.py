"""The one Settings class: every ``PACKSHOT_*`` environment variable is read here, nowhere else."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from core.urls import redact_url

if TYPE_CHECKING:  # imaging.quality pulls in numpy and Pillow; every command reads settings
    from imaging.quality import MaskThresholds

__all__ = ["MIN_WEBHOOK_SECRET_CHARS", "Settings", "configure", "get_settings"]

# Values people paste from examples instead of a real secret.
_PLACEHOLDER_SECRETS = {"changeme", "change-me", "secret", "xxx", "your-api-key", "todo", "none"}
# Shortest webhook secret the production profile accepts (a guessable HMAC key signs anything).
MIN_WEBHOOK_SECRET_CHARS = 16

_Port = Annotated[int, Field(ge=1, le=65535)]


class Settings(BaseSettings):
    """Packshot configuration; each variable is ``PACKSHOT_`` + the upper-cased field name."""

    # Errors never echo the input: a model-level error would print every secret given.
    model_config = SettingsConfigDict(
        env_prefix="PACKSHOT_",
        env_file=".env",
        extra="ignore",
        validate_default=True,
        hide_input_in_errors=True,
    )

    # --- embedded defaults -------------------------------------------------------------------
    home: Path = Field(Path(".packshot"), description="Folder for the embedded defaults.")
    database_url: str = Field("", description="Job tables; default sqlite:///$HOME/packshot.db.")
    db_retry_s: float = Field(
        60.0,
        ge=0,
        le=3600,
        description="Seconds job-table reads and writes keep retrying while the DB is unreachable.",
    )
    store_url: str = Field("", description="Object store: file://DIR or s3://bucket/prefix.")
    s3_endpoint_url: str | None = Field(None, description="S3-compatible endpoint (MinIO, moto).")
    s3_region: str | None = Field(None, description="S3 region; the AWS chain decides if unset.")
    aws_credentials_block: str | None = Field(
        None, description="Name of a prefect-aws AwsCredentials block; standard AWS chain if unset."
    )

    # --- providers ---------------------------------------------------------------------------
    segmenter: str = Field("local", description="local, freepik, or a comma list tried in order.")
    backgrounds: str = Field("gradient", description="gradient or freepik-mystic.")
    publisher: str = Field("none", description="none or shopify.")
    model_path: Path | None = Field(
        None,
        description="ONNX model for the local segmenter (U²-Net family); shipped u2netp if unset.",
    )
    segmenter_threads: int = Field(1, ge=1, le=16, description="onnxruntime intra-op threads.")

    freepik_api_key: SecretStr | None = Field(None, description="Freepik (Magnific) API key.")
    freepik_base_url: str = Field("https://api.freepik.com", description="Freepik API base URL.")
    freepik_auth_header: str = Field("x-freepik-api-key", description="Header carrying the key.")
    freepik_connect_timeout_s: float = Field(5.0, gt=0, description="Seconds to connect.")
    freepik_read_timeout_s: float = Field(
        90.0, gt=0, description="Seconds to wait for an answer (remove-background is synchronous)."
    )
    freepik_max_retries: int = Field(
        2, ge=0, le=10, description="In-client retries of 429/5xx/network errors per call."
    )
    freepik_retry_backoff_s: float = Field(
        1.0, ge=0, le=60, description="First in-client retry delay; doubles, with jitter."
    )
    freepik_max_retry_after_s: float = Field(
        30.0, ge=0, le=600, description="Longest Retry-After honoured in-client; longer fails now."
    )
    freepik_poll_interval_s: float = Field(
        2.0, ge=0, le=60, description="First wait between Mystic status polls."
    )
    freepik_poll_max_interval_s: float = Field(
        5.0, ge=0, le=60, description="Longest wait between Mystic status polls."
    )
    freepik_mystic_deadline_s: float = Field(
        300.0, gt=0, le=3600, description="Give up on a Mystic task after this many seconds."
    )
    freepik_max_download_bytes: int = Field(
        100_000_000, gt=0, description="Largest result image downloaded from Freepik."
    )
    freepik_rate_burst: int = Field(
        50, ge=1, le=1000, description="Burst of requests, all workers (GCL freepik-rate)."
    )
    freepik_rate_per_second: float = Field(
        9.0, gt=0, le=100, description="Sustained requests per second, all workers (freepik-rate)."
    )
    freepik_inflight: int = Field(
        8, ge=1, le=256, description="Freepik calls in flight, all workers (GCL freepik-inflight)."
    )
    freepik_limit_wait_s: float = Field(
        300.0, gt=0, le=3600, description="Longest wait for a Freepik concurrency/rate slot."
    )
    price_remove_background_usd: float = Field(
        0.12, ge=0, description="USD per Freepik remove-background call (price unpublished)."
    )
    price_mystic_1k_usd: float = Field(0.12, ge=0, description="USD per Mystic 1K image.")
    price_mystic_2k_usd: float = Field(0.12, ge=0, description="USD per Mystic 2K image.")
    price_mystic_4k_usd: float = Field(0.39, ge=0, description="USD per Mystic 4K image.")
    cost_confirm_usd: float = Field(
        5.0, ge=0, description="Backfills estimated above this many USD ask for confirmation."
    )

    shopify_shop: str | None = Field(None, description="Shop name: {shop}.myshopify.com.")
    shopify_access_token: SecretStr | None = Field(None, description="Admin API access token.")
    shopify_api_version: str = Field("2026-10", description="Admin API version.")
    shopify_base_url: str = Field("https://{shop}.myshopify.com", description="Admin API base URL.")
    shopify_client_id: str | None = Field(
        None, description="Client id for the client-credentials grant (apps created since 2026)."
    )
    shopify_client_secret: SecretStr | None = Field(
        None, description="Client secret for the client-credentials grant."
    )
    shopify_alt_template: str = Field(
        "{title} – {theme} {n}",
        description="Alt text of published images; fields {title}, {theme}, {n}, {sku}.",
    )
    shopify_timeout_s: float = Field(30.0, gt=0, description="Seconds per Admin API request.")
    shopify_max_attempts: int = Field(
        5, ge=1, le=20, description="Attempts per Admin API call (throttling, network errors)."
    )
    shopify_lookup_attempts: int = Field(
        3, ge=1, le=10, description="SKU searches before 'product not found' (the index lags)."
    )
    shopify_lookup_delay_s: float = Field(5.0, ge=0, description="Seconds between SKU searches.")
    shopify_media_timeout_s: float = Field(
        600.0, gt=0, le=3600, description="Seconds to wait for new media to become READY."
    )
    shopify_poll_interval_s: float = Field(
        1.0, gt=0, le=60, description="First wait between media status polls; doubles up to 10 s."
    )
    shopify_staged_uploads: bool = Field(
        False, description="Upload the bytes (staged upload) even when the store has https URLs."
    )
    shopify_inflight: int = Field(
        4, ge=1, le=64, description="Parallel Admin API calls, all workers (GCL shopify-inflight)."
    )
    shopify_rate: float = Field(
        4.0, gt=0, le=100, description="Admin API calls per second, all workers (GCL shopify-rate)."
    )
    shopify_limit_wait_s: float = Field(
        120.0, gt=0, description="Longest wait for a shopify-inflight / shopify-rate slot."
    )

    # --- webhook and stack -------------------------------------------------------------------
    webhook_secret: SecretStr | None = Field(
        None,
        description="HMAC secret shared with 3JMS; never blank, at least 16 characters in "
        "production. Unset: deliveries are not signed (embedded profile only).",
    )
    secret_key: SecretStr | None = Field(
        None, description="key that encrypts source-URL credentials at rest"
    )
    webhook_port: _Port = Field(8000, description="Port of the webhook in `packshot up`.")
    webhook_max_body_bytes: int = Field(
        65_536, ge=1024, le=10_000_000, description="Largest webhook body accepted (else 413)."
    )
    webhook_body_timeout_s: float = Field(
        10.0,
        gt=0,
        le=300,
        description="Seconds a client has to send the whole request body once its headers "
        "arrived (else 408 and the connection is closed).",
    )
    dispatcher_enabled: bool = Field(
        True,
        description="Run the flow-run dispatcher (with crash recovery and the event sender) "
        "inside the webhook process; `packshot up` runs them in a process of their own.",
    )
    dispatch_backoff_max_s: float = Field(
        30.0, gt=0, le=3600, description="Longest wait between dispatch retries (Prefect down)."
    )
    dispatch_poll_s: float = Field(
        0.2,
        gt=0,
        le=60,
        description="How often an idle dispatcher looks for waiting jobs (a dispatcher in the "
        "webhook's process is also woken by each new job; one on its own relies on this).",
    )
    dispatch_batch_max: int = Field(
        10,
        ge=1,
        le=50,
        description="Most photos one flow run carries when several wait (a burst pays one "
        "process start per batch; a photo alone is dispatched alone). 1 turns batching off.",
    )
    dispatch_linger_s: float = Field(
        0.2,
        ge=0,
        le=5,
        description="How long an idle dispatcher waits after a job arrives for the rest of a "
        "burst before creating runs (0: at once).",
    )
    dispatch_spread: int | None = Field(
        None,
        ge=1,
        le=1000,
        description="Flow runs a burst is shared among: the flow runs the work pool runs at "
        "once. Default: PACKSHOT_WORKERS × PACKSHOT_WORKER_LIMIT of this stack.",
    )
    dashboard_port: _Port = Field(8501, description="Port of the dashboard.")
    dashboard_password: SecretStr | None = Field(
        None,
        description="Password operators sign in to the dashboard with (with their name) before "
        "approving, rejecting or re-running; unused when .streamlit/secrets.toml has an [auth] "
        "section. Unset and no [auth]: actions are open (embedded profile only).",
    )
    prefect_port: _Port = Field(4200, description="Port of the local Prefect server.")
    local_server_idle_s: float = Field(
        900,
        ge=0,
        le=86400,
        description="How long the Prefect server that `packshot process` starts in the "
        "background stays up unused, for the next command to reuse (0: stop after each "
        "command).",
    )
    bind: str = Field("127.0.0.1", description="Address the embedded stack listens on.")
    prefect_api_url: str | None = Field(
        None,
        validation_alias="PREFECT_API_URL",
        description="Prefect's own variable: the API to use instead of the embedded server.",
    )
    prefect_api_auth_string: SecretStr | None = Field(
        None,
        validation_alias="PREFECT_API_AUTH_STRING",
        description="Prefect's own variable: user:password of the Prefect API (HTTP basic auth); "
        "embedded: generated into $PACKSHOT_HOME/prefect-api-auth (mode 0600).",
    )
    prefect_ui_url: str | None = Field(
        None,
        validation_alias="PREFECT_UI_URL",
        description="Prefect's own variable: the Prefect UI's public address (behind a TLS "
        "proxy); the only origin its API accepts cross-origin requests from.",
    )
    stop_grace_s: float = Field(
        20.0,
        gt=0,
        le=600,
        description="Seconds `packshot up` gives cancelled flow runs to end when it stops; "
        "then their processes are killed.",
    )

    # --- production topology -----------------------------------------------------------------
    profile: Literal["embedded", "production"] = Field(
        "embedded",
        description="embedded (one machine) or production (PostgreSQL, S3; checked at start).",
    )
    workers: int = Field(1, ge=1, le=64, description="Prefect workers `packshot up` starts here.")
    worker_limit: int = Field(
        2, ge=1, le=64, description="Flow runs at once per worker (about one per core)."
    )
    worker_nice: int = Field(
        10,
        ge=0,
        le=19,
        description="CPU niceness of the workers `packshot up` starts, inherited by their "
        "flow-run processes, which are also scheduled as batch work (Linux): on a shared "
        "machine the webhook and the Prefect server answer first while a burst keeps the "
        "pipeline busy (0: same priority, normal scheduling).",
    )
    warm_engine: bool = Field(
        True,
        description="Fork each flow run of a worker `packshot up` starts from a warm engine "
        "beside it, which has imported Prefect and the pipeline already (Linux), instead of "
        "starting a fresh interpreter per flow run.",
    )
    server_nice: int = Field(
        5,
        ge=0,
        le=19,
        description="CPU niceness of the Prefect server and the dispatcher `packshot up` "
        "starts: below the webhook (0), above the workers, so deliveries are answered first.",
    )
    results_url: str | None = Field(
        None,
        description="Prefect results (s3://bucket/prefix); production: the store's bucket, "
        "prefix prefect-results.",
    )
    results_block: str = Field(
        "packshot-results", description="Name of the prefect-aws S3Bucket block for results."
    )
    prefect_database_url: SecretStr | None = Field(
        None,
        validation_alias="PREFECT_API_DATABASE_CONNECTION_URL",
        description="Prefect's own variable: the database of the server `packshot up` starts.",
    )
    zombie_after_s: int = Field(
        600,
        ge=45,
        le=86_400,
        description="A running flow run without a heartbeat for this long is marked Crashed.",
    )
    crash_reruns: int = Field(
        2, ge=0, le=10, description="Runs again of a job whose flow run crashed, before FAILED."
    )
    recover_interval_s: float = Field(
        15.0, gt=0, le=3600, description="How often the webhook looks for crashed flow runs."
    )

    # --- outbound events (docs/events.md) ---------------------------------------------------
    notify_url: str = Field(
        "",
        description="Comma-separated URLs that receive job events (DONE, FAILED, …); unset = none.",
    )
    notify_secret: SecretStr | None = Field(
        None, description="HMAC secret that signs outbound events (X-Packshot-Signature)."
    )
    notify_secret_previous: SecretStr | None = Field(
        None,
        description="The secret being rotated out: while set, events carry a v1 for both secrets.",
    )
    notify_allow_private: bool = Field(
        False, description="Allow event targets on loopback/private addresses (tests, demo)."
    )
    notify_connect_timeout_s: float = Field(
        5.0, gt=0, le=60, description="Seconds to connect to an event target."
    )
    notify_timeout_s: float = Field(
        10.0, gt=0, le=120, description="Seconds one event delivery may take in total."
    )
    notify_backoff_first_s: float = Field(
        1.0, gt=0, le=3600, description="First wait before an event is sent again; doubles."
    )
    notify_backoff_max_s: float = Field(
        3600.0, gt=0, le=86_400, description="Longest wait between two tries of an event."
    )
    notify_give_up_s: float = Field(
        86_400.0,
        gt=0,
        le=30 * 86_400,
        description="An event still undelivered this long after it was created is marked dead.",
    )
    notify_poll_s: float = Field(
        0.2, gt=0, le=60, description="How often an idle event sender looks for due events."
    )
    notify_batch: int = Field(64, ge=1, le=1000, description="Events one sender claims at a time.")
    notify_concurrency: int = Field(
        8, ge=1, le=64, description="Deliveries one sender has in flight at once."
    )
    notify_sender_enabled: bool = Field(
        True,
        description="Run the event sender inside the webhook process (off when "
        "`packshot notify` runs it on its own).",
    )
    public_base_url: str | None = Field(
        None,
        description="Public base URL of the store (a CDN): events link manifests as base + key.",
    )
    manifest_url_expires_s: int = Field(
        604_800,
        ge=60,
        le=604_800,
        description="Lifetime of the presigned manifest URL in events (S3 store, no public URL).",
    )

    # --- input limits and download -----------------------------------------------------------
    max_source_bytes: int = Field(25_000_000, gt=0, description="Largest accepted source file.")
    max_source_pixels: int = Field(50_000_000, gt=0, description="Largest accepted source image.")
    min_source_px: int = Field(200, gt=0, description="Smallest accepted longer side, in pixels.")
    allow_private_sources: bool = Field(
        False, description="Allow image URLs on loopback/private addresses (demo, tests)."
    )
    allow_local_sources: bool = Field(
        False, description="Accept local file paths as sources (set by `packshot process` only)."
    )
    download_connect_timeout: float = Field(5.0, gt=0, description="Seconds to connect.")
    download_read_timeout: float = Field(
        30.0, gt=0, description="Seconds to wait for the answer's headers (and between bytes)."
    )
    download_deadline_s: float = Field(
        60.0,
        gt=0,
        le=150,
        description="Seconds one source download may take in all (connect, redirects, body); "
        "past it the job fails as bad input. At most 150: the download step times out at 180.",
    )
    download_min_rate_bps: int = Field(
        20_000,
        ge=0,
        description="Slowest accepted source, bytes per second over any 5 s of the body "
        "(0: no minimum); a slower source fails the job at once, without retries.",
    )
    max_redirects: int = Field(3, ge=0, le=10, description="Redirects followed on download.")

    # --- rendering and steps -----------------------------------------------------------------
    master_size: int = Field(1600, ge=1200, le=4096, description="Side of the master composite.")
    derivative_workers: int = Field(2, ge=1, le=16, description="Encode threads per composite.")
    themes_file: Path | None = Field(None, description="JSON file with extra or changed themes.")
    step_retries: int = Field(3, ge=0, le=10, description="Retries of a transient step failure.")
    retry_backoff_s: float = Field(2.0, ge=0, description="First retry delay; doubles each time.")
    log_level: str = Field("INFO", description="Log level of Packshot's own loggers.")

    # --- quality gate (imaging/quality.py; chosen with benchmarks/quality.py) ------------------
    review: Literal["auto", "always", "off"] = Field(
        "auto",
        description="What a quality verdict does: auto holds a `review` verdict in NEEDS_REVIEW "
        "(nothing published until a person approves), always holds every job, off holds none "
        "(verdicts are still recorded).",
    )
    quality_soft_alpha_max: float = Field(
        0.12, ge=0, le=1, description="Most half-transparent alpha per product pixel."
    )
    quality_frame_max: float = Field(
        0.05, ge=0, le=1, description="Largest share of the photo's edge the product may cover."
    )
    quality_foreground_min: float = Field(
        0.03, ge=0, le=1, description="Smallest share of the photo the product may cover."
    )
    quality_foreground_max: float = Field(
        0.7, ge=0, le=1, description="Largest share of the photo the product may cover."
    )
    quality_fragments_max: float = Field(
        0.1, ge=0, le=1, description="Largest share of the product outside its largest part."
    )
    quality_strokes_max: float = Field(
        0.01, ge=0, le=1, description="Largest share of the product in thin strokes (letters)."
    )
    quality_agreement_min: float = Field(
        0.0,
        ge=0,
        le=1,
        description="Smallest IoU between the cut-out and a mirrored second look; 0 skips the "
        "check (it costs one more segmentation and caught nothing the others miss).",
    )
    quality_fidelity_max_error: float = Field(
        8.0,
        ge=0,
        le=255,
        description="Largest mean difference (0-255) between the product in a composite and the "
        "cut-out's own pixels; a JPEG master alone makes up to about 4.",
    )

    @field_validator(
        "freepik_api_key",
        "shopify_access_token",
        "shopify_client_secret",
        "secret_key",
        "prefect_api_auth_string",
        "notify_secret",
        "notify_secret_previous",
        "dashboard_password",
    )
    @classmethod
    def _no_placeholder(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value().strip():
            return None
        _refuse_placeholder(value)
        return value

    @field_validator("webhook_secret")
    @classmethod
    def _webhook_secret(cls, value: SecretStr | None) -> SecretStr | None:
        # Blank is not "unset": treating it so would turn signature checks off unnoticed.
        if value is not None and not value.get_secret_value().strip():
            raise ValueError(
                "is blank: set a secret of at least "
                f"{MIN_WEBHOOK_SECRET_CHARS} characters, or leave the variable unset"
            )
        if value is not None:
            _refuse_placeholder(value)
        return value

    @model_validator(mode="after")
    def _production_secret(self) -> Settings:
        secret = self.webhook_secret.get_secret_value().strip() if self.webhook_secret else None
        if self.profile == "production" and secret and len(secret) < MIN_WEBHOOK_SECRET_CHARS:
            raise ValueError(
                f"PACKSHOT_WEBHOOK_SECRET is shorter than {MIN_WEBHOOK_SECRET_CHARS} "
                "characters, the least the production profile accepts"
            )
        return self

    @model_validator(mode="after")
    def _fill_defaults(self) -> Settings:
        home = self.home.expanduser()
        if not self.database_url:
            self.database_url = f"sqlite:///{(home / 'packshot.db').resolve()}"
        if not self.store_url:
            self.store_url = (home / "store").resolve().as_uri()
        if self.prefect_api_auth_string is None and self.profile == "embedded":
            # The embedded stack's generated credentials: every process of this home finds them.
            auth_file = self.prefect_auth_file
            stored = auth_file.read_text().strip() if auth_file.is_file() else ""
            self.prefect_api_auth_string = SecretStr(stored) if stored else None
        return self

    @field_validator("shopify_alt_template")
    @classmethod
    def _alt_fields(cls, value: str) -> str:
        try:
            value.format(title="t", theme="t", n=1, sku="s")
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(f"unusable template ({exc}); fields: title, theme, n, sku") from exc
        return value

    @field_validator("notify_url")
    @classmethod
    def _notify_targets(cls, value: str) -> str:
        for target in _split_urls(value):
            _check_http_url(target)
        return value

    @field_validator("public_base_url")
    @classmethod
    def _public_base(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        _check_http_url(value.strip())
        return value.strip()

    @property
    def notify_targets(self) -> list[str]:
        """The event targets of ``PACKSHOT_NOTIFY_URL``, in order, without duplicates."""
        return list(dict.fromkeys(_split_urls(self.notify_url)))

    @property
    def notify_secrets(self) -> list[str]:
        """The signing secrets: the current one first, then the one being rotated out."""
        found = (self.notify_secret, self.notify_secret_previous)
        return [secret.get_secret_value() for secret in found if secret is not None]

    @property
    def quality_mask_thresholds(self) -> MaskThresholds:
        """The mask checks' limits from the ``PACKSHOT_QUALITY_*`` settings."""
        from imaging.quality import MaskThresholds

        return MaskThresholds(
            soft_alpha_max=self.quality_soft_alpha_max,
            frame_max=self.quality_frame_max,
            foreground_min=self.quality_foreground_min,
            foreground_max=self.quality_foreground_max,
            fragments_max=self.quality_fragments_max,
            strokes_max=self.quality_strokes_max,
        )

    @property
    def segmenter_chain(self) -> list[str]:
        """The segmenter names, in the order they are tried."""
        return [name.strip() for name in self.segmenter.split(",") if name.strip()]

    @property
    def prefect_auth_file(self) -> Path:
        """Where the embedded stack keeps the Prefect API credentials it generated (mode 0600)."""
        return (self.home.expanduser() / "prefect-api-auth").resolve()

    @property
    def prefect_home(self) -> Path:
        """PREFECT_HOME used by the embedded stack."""
        return (self.home / "prefect").resolve()


def _refuse_placeholder(value: SecretStr) -> None:
    raw = value.get_secret_value().strip()
    if raw.lower() in _PLACEHOLDER_SECRETS or raw.startswith("<"):
        raise ValueError("is a placeholder, not a real secret")


def _split_urls(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


def _check_http_url(url: str) -> None:
    """An absolute http(s) URL with a host and no credentials, or ValueError naming it."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{redact_url(url)!r} is not an absolute http(s) URL")
    if parts.username or parts.password:
        raise ValueError(f"{redact_url(url)!r} must not carry credentials")


_overrides: dict[str, object] = {}


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings; tests call ``get_settings.cache_clear()`` after changing env."""
    return Settings(**_overrides)  # type: ignore[arg-type]


def configure(**overrides: object) -> Settings:
    """Override fields for this process only (the CLI's own switches); returns the new settings."""
    _overrides.update(overrides)
    get_settings.cache_clear()
    return get_settings()

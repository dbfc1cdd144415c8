"""Object store on an S3 (or S3-compatible) bucket; needs the ``s3`` extra (boto3, prefect-aws).

boto3, botocore and prefect-aws are imported lazily, so importing this module costs nothing.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, cast

from core.errors import ConfigurationError
from core.storage._s3_errors import describe_endpoint, map_s3_errors
from core.storage.base import (
    ObjectNotFound,
    StoredObject,
    cache_control_for,
    validate_key,
)

if TYPE_CHECKING:
    from boto3.session import Session
    from mypy_boto3_s3 import S3Client
    from prefect_aws import AwsCredentials

__all__ = ["S3Store"]

_DEFAULT_CONTENT_TYPE = "binary/octet-stream"


class S3Store:
    """Objects in ``bucket`` under ``prefix/``.

    The boto3 client is created on first use, once per store, and shared by all threads. It uses
    SigV4, the given timeouts and botocore's ``standard`` retry mode. Credentials come from the
    prefect-aws ``AwsCredentials`` block named ``credentials_block`` when given (its endpoint,
    region and client settings apply unless overridden here), else from the standard AWS chain.

    Uploads carry the exact Content-Type, a Cache-Control from
    :func:`~core.storage.base.cache_control_for` and a SHA-256 checksum that S3 verifies.
    botocore errors become ``ObjectNotFound`` (missing key), ``ConfigurationError`` (denied,
    bad credentials, missing bucket) or ``StorageError`` (throttling, 5xx, network).

    Args:
        bucket: bucket name.
        prefix: key prefix inside the bucket, without leading or trailing ``/`` ("" for none).
        client: a ready S3 client (tests); when given, the connection arguments are unused.
        endpoint_url: S3-compatible endpoint (MinIO, R2, moto); ``None`` for AWS.
        region: region name; ``None`` lets the block or the AWS chain decide.
        credentials_block: name of a saved prefect-aws ``AwsCredentials`` block.
        connect_timeout: seconds to open a connection.
        read_timeout: seconds to wait for data on an open connection.
        max_attempts: total attempts per request, first one included (botocore standard mode).
    """

    name: str = "s3"

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        client: S3Client | None = None,
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        credentials_block: str | None = None,
        connect_timeout: float = 5,
        read_timeout: float = 30,
        max_attempts: int = 3,
    ) -> None:
        if not bucket:
            raise ValueError("bucket must not be empty")
        prefix = prefix.strip("/")
        if prefix:
            validate_key(prefix)
        self.bucket = bucket
        self.prefix = prefix
        self.endpoint_url = endpoint_url
        self.region = region
        self.credentials_block = credentials_block
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.max_attempts = max_attempts
        self._client: S3Client | None = client
        self._client_lock = threading.Lock()

    @property
    def client(self) -> S3Client:
        """The store's boto3 S3 client, created on first use (thread-safe)."""
        client = self._client
        if client is None:
            with self._client_lock:
                if self._client is None:
                    self._client = self._create_client()
                client = self._client
        return client

    def put(self, key: str, data: bytes, *, content_type: str) -> StoredObject:
        """Upload ``data`` with exact Content-Type, Cache-Control and a SHA-256 checksum."""
        full_key = self._full_key(key)
        digest = hashlib.sha256(data).digest()
        with map_s3_errors(self, "put", key):
            self.client.put_object(
                Bucket=self.bucket,
                Key=full_key,
                Body=data,
                ContentType=content_type,
                CacheControl=cache_control_for(key, content_type),
                ChecksumAlgorithm="SHA256",
                ChecksumSHA256=base64.b64encode(digest).decode("ascii"),
            )
        return StoredObject(key=key, size=len(data), content_type=content_type, sha256=digest.hex())

    def get(self, key: str) -> bytes:
        """Download the object; :class:`ObjectNotFound` if missing."""
        full_key = self._full_key(key)
        with map_s3_errors(self, "get", key):
            response = self.client.get_object(Bucket=self.bucket, Key=full_key)
            return response["Body"].read()

    def head(self, key: str) -> StoredObject | None:
        """Size, Content-Type and (when S3 kept one) sha256 of the object; ``None`` if missing."""
        full_key = self._full_key(key)
        try:
            with map_s3_errors(self, "head", key):
                response = self.client.head_object(
                    Bucket=self.bucket, Key=full_key, ChecksumMode="ENABLED"
                )
        except ObjectNotFound:
            return None
        return StoredObject(
            key=key,
            size=response["ContentLength"],
            content_type=response.get("ContentType") or _DEFAULT_CONTENT_TYPE,
            sha256=_sha256_hex(response.get("ChecksumSHA256")),
        )

    def exists(self, key: str) -> bool:
        """True if the object exists (one HEAD request)."""
        return self.head(key) is not None

    def delete(self, key: str) -> None:
        """Delete the object; S3 treats a missing key as success."""
        full_key = self._full_key(key)
        with map_s3_errors(self, "delete", key):
            self.client.delete_object(Bucket=self.bucket, Key=full_key)

    def list(self, prefix: str = "") -> Iterator[str]:
        """The sorted keys (relative to the store prefix) starting with ``prefix``."""
        base = f"{self.prefix}/" if self.prefix else ""
        keys: set[str] = set()
        with map_s3_errors(self, "list", prefix or "*"):
            paginator = self.client.get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=self.bucket, Prefix=base + prefix):
                keys.update(item["Key"][len(base) :] for item in page.get("Contents", []))
        keys = {key for key in keys if key and not key.endswith("/")}  # folder markers
        return iter(sorted(keys))

    def url(self, key: str, *, expires_in: int = 3600) -> str:
        """A presigned GET URL, valid ``expires_in`` seconds (1 to 604800; no request is made)."""
        if not 1 <= expires_in <= 604_800:
            raise ValueError(f"expires_in must be between 1 and 604800 seconds, got {expires_in}")
        full_key = self._full_key(key)
        with map_s3_errors(self, "presign", key):
            return self.client.generate_presigned_url(
                "get_object",
                Params={"Bucket": self.bucket, "Key": full_key},
                ExpiresIn=expires_in,
            )

    def describe(self) -> str:
        """``s3://bucket/prefix`` plus the endpoint when one is set (credentials never shown)."""
        location = f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"
        if self.endpoint_url:
            location += f" at {describe_endpoint(self.endpoint_url)}"
        return location

    def _full_key(self, key: str) -> str:
        validate_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def _create_client(self) -> S3Client:
        from botocore.config import Config

        config = Config(
            connect_timeout=self.connect_timeout,
            read_timeout=self.read_timeout,
            # botocore's "max_attempts" counts retries only; "total_max_attempts" counts all.
            retries={"total_max_attempts": self.max_attempts, "mode": "standard"},
            signature_version="s3v4",
        )
        session, params = self._session_and_params()
        block_config = params.pop("config", None)
        if block_config is not None:
            config = block_config.merge(config)  # ours win: timeouts and retries are settings
        if self.endpoint_url:
            params["endpoint_url"] = self.endpoint_url
        if self.region:
            params["region_name"] = self.region
        try:
            with map_s3_errors(self, "connect", "*"):
                return session.client("s3", config=config, **params)
        except ValueError:  # botocore: "Invalid endpoint: <url>"; do not echo the URL
            endpoint = describe_endpoint(str(params.get("endpoint_url", "")))
            raise ConfigurationError(f"invalid S3 endpoint URL {endpoint!r}") from None

    def _session_and_params(self) -> tuple[Session, dict[str, Any]]:
        if self.credentials_block is None:
            import boto3

            return boto3.session.Session(), {}
        return _load_credentials_block(self.credentials_block)


def _load_credentials_block(name: str) -> tuple[Session, dict[str, Any]]:
    """Session and client parameters (endpoint, config, …) from a prefect-aws block."""
    try:
        from prefect_aws import AwsCredentials
    except ImportError as exc:
        raise ConfigurationError(
            f"AWS credentials block {name!r} needs prefect-aws (install the s3 extra)"
        ) from exc
    try:
        # _sync: never hand back a coroutine, even when called from inside an event loop.
        loaded = AwsCredentials.load(name, _sync=True)  # type: ignore[call-arg]
    except ValueError as exc:
        raise ConfigurationError(f"cannot load AWS credentials block {name!r}") from exc
    block = cast("AwsCredentials", loaded)
    params = block.aws_client_parameters.get_params_override()
    if block.region_name:
        params["region_name"] = block.region_name
    return block.get_boto3_session(), params


def _sha256_hex(checksum: str | None) -> str | None:
    # Multipart uploads report a checksum of checksums ("…-3"); only a whole-object one is a sha256.
    if not checksum or "-" in checksum:
        return None
    try:
        raw = base64.b64decode(checksum, validate=True)
    except binascii.Error:
        return None
    return raw.hex() if len(raw) == 32 else None

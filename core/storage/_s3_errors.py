"""Turns botocore errors into the pipeline's error tree at the S3 boundary."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol
from urllib.parse import urlsplit

from core.errors import ConfigurationError, PipelineError, StorageError
from core.storage.base import ObjectNotFound

__all__ = ["describe_endpoint", "map_s3_errors"]

_MISSING_CODES = frozenset({"NoSuchKey", "NotFound", "404"})
# An operator must act: wrong keys, missing permission, missing bucket, wrong region.
_CONFIG_CODES = frozenset(
    {
        "AccessDenied",
        "AllAccessDisabled",
        "AccountProblem",
        "AuthorizationHeaderMalformed",
        "ExpiredToken",
        "InvalidAccessKeyId",
        "InvalidBucketName",
        "InvalidToken",
        "NoSuchBucket",
        "PermanentRedirect",
        "SignatureDoesNotMatch",
        "301",
        "403",
    }
)
_CONFIG_BOTOCORE = frozenset(
    {
        "NoCredentialsError",
        "PartialCredentialsError",
        "ProfileNotFound",
        "CredentialRetrievalError",
        "NoRegionError",
        "UnknownSignatureVersionError",
        "InvalidEndpointConfigurationError",
    }
)


class _Located(Protocol):
    bucket: str

    def describe(self) -> str: ...


@contextmanager
def map_s3_errors(store: _Located, operation: str, key: str) -> Iterator[None]:
    """Re-raise botocore errors raised inside the block as pipeline errors.

    Messages name the operation, bucket and key and the S3 error code, never the credentials or
    the raw service message.

    Raises:
        ObjectNotFound: ``NoSuchKey`` / 404.
        ConfigurationError: access denied, bad credentials, missing bucket, no credentials.
        StorageError: throttling, 5xx, timeouts, connection failures and anything else S3 answers.
    """
    from botocore.exceptions import BotoCoreError, ClientError, ParamValidationError

    try:
        yield
    except (PipelineError, ParamValidationError):
        # Ours already; or a bad argument, which is a bug to surface as is, not an S3 failure.
        raise
    except ClientError as exc:
        raise _from_client_error(store, operation, key, exc) from exc
    except BotoCoreError as exc:
        raise _from_botocore_error(store, operation, key, exc) from exc


def _from_client_error(store: _Located, operation: str, key: str, exc: Exception) -> PipelineError:
    response = getattr(exc, "response", {}) or {}
    code = str(response.get("Error", {}).get("Code", "")) or "unknown"
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    where = f"{operation} {key!r} in {store.describe()}"
    if code in _MISSING_CODES:
        return ObjectNotFound(f"no object {key!r} in {store.describe()}")
    if code in _CONFIG_CODES:
        return ConfigurationError(
            f"S3 refused {where}: {code} (HTTP {status}); check the credentials, the bucket "
            f"{store.bucket!r}, its region and the permissions"
        )
    return StorageError(f"S3 failed {where}: {code} (HTTP {status})")


def _from_botocore_error(
    store: _Located, operation: str, key: str, exc: Exception
) -> PipelineError:
    kind = type(exc).__name__
    where = f"{operation} {key!r} in {store.describe()}"
    if kind in _CONFIG_BOTOCORE:
        return ConfigurationError(f"S3 is not configured for {where}: {kind}")
    # Connection refused/closed, timeouts, truncated bodies, checksum mismatches: transient.
    return StorageError(f"S3 failed {where}: {kind}")


def describe_endpoint(endpoint_url: str) -> str:
    """``scheme://host:port/path`` of an endpoint URL, with any ``user:password@`` removed."""
    try:
        parts = urlsplit(endpoint_url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "<unparsable endpoint URL>"
    if ":" in host:
        host = f"[{host}]"
    return f"{parts.scheme}://{host}{port}{parts.path}"

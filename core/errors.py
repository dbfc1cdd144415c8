"""The pipeline's error tree; retryability lives on the class.

::

    PipelineError                 retryable = False
    ├── InputError                bad source or request: never retried
    ├── ConfigurationError        missing/invalid settings or credentials: never retried
    ├── ProviderError             an external service (segmenter, generator) failed
    │   ├── ProviderUnavailable   network error, timeout, 5xx: retried
    │   ├── ProviderRateLimited   429 / throttled: retried (honours retry_after)
    │   └── ProviderRejected      4xx, malformed answer: not retried
    ├── StorageError              object store hiccup: retried
    └── PublishError              storefront failed: retried unless ``permanent``

Outside the tree, network timeouts and a database that was briefly out of reach
(``core.db_errors.is_transient_db_error``) are retried too.

Exceptions keep plain constructor arguments so they pickle: Prefect may persist a failed
task's exception and re-raise it in another process.
"""

from __future__ import annotations

__all__ = [
    "ConfigurationError",
    "InputError",
    "PipelineError",
    "ProviderError",
    "ProviderRateLimited",
    "ProviderRejected",
    "ProviderUnavailable",
    "PublishError",
    "StorageError",
    "is_retryable_error",
]


class PipelineError(Exception):
    """Base of every error the pipeline raises on purpose."""

    retryable: bool = False

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __reduce__(self) -> tuple[type, tuple[str]]:
        return (type(self), (self.message,))


class InputError(PipelineError):
    """The source image or a request field is unusable; retrying cannot help."""


class ConfigurationError(PipelineError):
    """Settings or credentials are missing or wrong; an operator must act."""


class ProviderError(PipelineError):
    """An external provider failed."""


class ProviderUnavailable(ProviderError):
    """Network error, timeout or 5xx from a provider: transient."""

    retryable = True


class ProviderRateLimited(ProviderError):
    """The provider throttled us; ``retry_after`` seconds, when it said so."""

    retryable = True

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after

    def __reduce__(self) -> tuple[type, tuple[str, float | None]]:  # type: ignore[override]
        return (type(self), (self.message, self.retry_after))


class ProviderRejected(ProviderError):
    """The provider refused the request as invalid; retrying cannot help."""


class StorageError(PipelineError):
    """The object store failed; usually transient."""

    retryable = True


class PublishError(PipelineError):
    """Publishing to the storefront failed; transient unless ``permanent``."""

    retryable = True

    def __init__(self, message: str, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent
        self.retryable = not permanent

    def __reduce__(self) -> tuple[type, tuple[str, bool]]:  # type: ignore[override]
        return (type(self), (self.message, self.permanent))


def is_retryable_error(exc: BaseException) -> bool:
    """True for errors worth another attempt: our transient classes, network timeouts, and
    a database that was briefly out of reach (``core.db_errors.is_transient_db_error``)."""
    if isinstance(exc, PipelineError):
        return exc.retryable
    if isinstance(exc, TimeoutError | ConnectionError):
        return True
    # Imported here: importing the error tree does not load SQLAlchemy.
    from core.db_errors import is_transient_db_error

    return is_transient_db_error(exc)

"""Object storage: the ``ObjectStore`` protocol, its local/S3/memory stores and ``new_store``."""

from __future__ import annotations

from core.storage.base import (
    ObjectNotFound,
    ObjectStore,
    StoredObject,
    cache_control_for,
    content_type_for,
    validate_key,
)
from core.storage.factory import new_store
from core.storage.local import LocalStore
from core.storage.memory import FlakyStore, MemoryStore
from core.storage.s3 import S3Store

__all__ = [
    "FlakyStore",
    "LocalStore",
    "MemoryStore",
    "ObjectNotFound",
    "ObjectStore",
    "S3Store",
    "StoredObject",
    "cache_control_for",
    "content_type_for",
    "new_store",
    "validate_key",
]

"""The artifact cache: reuse results instead of recomputing them, with the energy saved booked.

``@wattwise.cached`` memoises a function by content (its identity and normalised source,
its arguments hashed by content, a user version); entries are stored in safe formats
(JSON, NumPy ``.npy``, safetensors, bytes, files), verified on every read, and carry the
energy and carbon that producing them cost. Each hit records the energy it avoided in the
ledger, which ``wattwise footprint`` reports as "saved by reuse".

Importing this package is cheap: NumPy, torch, blake3 and fsspec are imported on use.
"""

from __future__ import annotations

from wattwise.cache._cache import (
    CACHE_VARIABLE,
    ArtifactCache,
    EntryInfo,
    ForeignEntryError,
    GcResult,
    Hit,
    Problem,
    UnsafeEntryError,
    UnsafeLocationError,
    default_location,
    parse_age,
    parse_size,
)
from wattwise.cache._decorator import CachedFunction, cached
from wattwise.cache._key import KeyParts, digest_value, key_parts, source_digest
from wattwise.cache._serialize import UnsafePickleError, UnsupportedValueError
from wattwise.cache._stores import BaseStore, FsspecStore, LocalStore

__all__ = [
    "CACHE_VARIABLE",
    "ArtifactCache",
    "BaseStore",
    "CachedFunction",
    "EntryInfo",
    "ForeignEntryError",
    "FsspecStore",
    "GcResult",
    "Hit",
    "KeyParts",
    "LocalStore",
    "Problem",
    "UnsafeEntryError",
    "UnsafeLocationError",
    "UnsafePickleError",
    "UnsupportedValueError",
    "cached",
    "default_location",
    "digest_value",
    "key_parts",
    "parse_age",
    "parse_size",
    "source_digest",
]

"""The cache's hashing is the shared ground-layer module :mod:`wattwise._hashing`."""

from __future__ import annotations

from wattwise._hashing import (
    Hasher,
    best_algorithm,
    feed_file,
    has_blake3,
    hash_bytes,
    hash_file,
    hash_tree,
    new_hasher,
)

__all__ = [
    "Hasher",
    "best_algorithm",
    "feed_file",
    "has_blake3",
    "hash_bytes",
    "hash_file",
    "hash_tree",
    "new_hasher",
]

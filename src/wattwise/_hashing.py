"""Content hashing: bytes, buffers, files and folders, with blake3 (or sha256).

The one hashing module of wattwise (ground layer: imports nothing above ``exceptions``),
shared by the artifact cache (keys, containers) and run fingerprints (environment).

blake3 hashes several GB/s on one core and uses more cores for large inputs
(``max_threads``); files are memory-mapped, so a 1 GB file is never copied into Python.
sha256 is the fallback where blake3 is not installed (``pip install 'wattwise[cache]'``)
and is used only for run fingerprints, never for cache keys. Every digest is reported
with its algorithm.

A folder's digest is that of a manifest: for every regular file under it, in sorted
order of its POSIX path relative to the folder, the line
``F <path>\\0<size>\\0<file digest>\\n``; a symbolic link to a folder contributes
``L <path>\\0<target>\\n`` and is not followed. File names and contents count; times,
permissions and the folder's own name do not.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any, Protocol

from wattwise.exceptions import CacheError

#: Inputs at least this large (bytes) are hashed with several threads.
_PARALLEL_BYTES = 1 << 20
_CHUNK = 1 << 22


class Hasher(Protocol):
    """The part of the hashlib/blake3 interface wattwise uses."""

    def update(self, data: Any, /) -> Any:
        """Feed bytes."""

    def hexdigest(self) -> str:
        """The digest as hex."""

    def digest(self) -> bytes:
        """The digest as bytes."""


def has_blake3() -> bool:
    """Whether the blake3 package can be imported."""
    try:
        import blake3  # noqa: F401
    except ImportError:
        return False
    return True


def best_algorithm() -> str:
    """``blake3`` when installed, else ``sha256``."""
    return "blake3" if has_blake3() else "sha256"


def new_hasher(algorithm: str = "blake3", *, size_hint: int = 0) -> Hasher:
    """A fresh hasher.

    Args:
        algorithm: ``blake3`` or ``sha256``.
        size_hint: Expected input size in bytes; large inputs get a multi-threaded blake3.

    Raises:
        CacheError: blake3 was asked for and is not installed.
    """
    if algorithm == "sha256":
        return hashlib.sha256()
    try:
        import blake3
    except ImportError as err:
        msg = (
            "The artifact cache hashes with blake3, but the 'blake3' package is not installed. "
            "Install it with: pip install 'wattwise[cache]'."
        )
        raise CacheError(msg) from err
    threads = blake3.blake3.AUTO if size_hint >= _PARALLEL_BYTES else 1
    hasher: Hasher = blake3.blake3(max_threads=threads)
    return hasher


def hash_bytes(data: bytes | bytearray | memoryview, algorithm: str = "blake3") -> str:
    """Hex digest of a buffer (any object with the buffer protocol)."""
    view = memoryview(data).cast("B")
    hasher = new_hasher(algorithm, size_hint=view.nbytes)
    hasher.update(view)
    return hasher.hexdigest()


def feed_file(hasher: Hasher, path: Path, algorithm: str = "blake3") -> int:
    """Feed a file's content into ``hasher``; returns its size in bytes."""
    size = path.stat().st_size
    if algorithm == "blake3" and size >= _PARALLEL_BYTES and hasattr(hasher, "update_mmap"):
        hasher.update_mmap(str(path))
        return size
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            hasher.update(chunk)
    return size


def hash_file(path: str | os.PathLike[str], algorithm: str = "blake3") -> tuple[str, int]:
    """``(hex digest, size in bytes)`` of a file's content (``b3sum``/``sha256sum`` equal)."""
    path = Path(path)
    hasher = new_hasher(algorithm, size_hint=path.stat().st_size)
    size = feed_file(hasher, path, algorithm)
    return hasher.hexdigest(), size


def hash_tree(path: str | os.PathLike[str], algorithm: str = "blake3") -> tuple[str, int, int]:
    """``(hex digest, total size in bytes, number of files)`` of a folder (see module doc)."""
    root = Path(path)
    lines: list[tuple[str, bytes]] = []
    total = count = 0
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        for name in dirnames:
            full = here / name
            if full.is_symlink():
                rel = full.relative_to(root).as_posix()
                lines.append((rel, f"L {rel}\0{os.readlink(full)}\n".encode()))
        for name in filenames:
            full = here / name
            if not full.is_file():
                continue
            digest, size = hash_file(full, algorithm)
            rel = full.relative_to(root).as_posix()
            lines.append((rel, f"F {rel}\0{size}\0{digest}\n".encode()))
            total += size
            count += 1
    manifest = new_hasher(algorithm)
    for _, line in sorted(lines):
        manifest.update(line)
    return manifest.hexdigest(), total, count

"""The entry file: one self-verifying file per cache entry.

Layout (``.wwc``)::

    b"WWCACHE1"                 8 bytes, format magic
    header length               8 bytes, big-endian
    header                      JSON (UTF-8): key, value spec, member table, cost, ...
    members                     the value's binary members, back to back
    digest                      32 bytes: blake3 of everything above

Reading an entry recomputes the digest over the whole file first: a flipped bit anywhere
or a truncated file fails the check before any member is parsed. The header also names
the key it was written for, so an entry renamed or copied under another key fails too.
"""

from __future__ import annotations

import json
from typing import Any

from wattwise.cache._hashing import new_hasher
from wattwise.exceptions import CacheCorruptError

MAGIC = b"WWCACHE1"
FORMAT = 1
_DIGEST = 32
_PREFIX = len(MAGIC) + 8


def pack(header: dict[str, Any], members: list[tuple[str, bytes]]) -> bytes:
    """The entry file for ``header`` (a member table is added) and ``members``."""
    table, offset = [], 0
    for kind, content in members:
        table.append({"kind": kind, "offset": offset, "size": len(content)})
        offset += len(content)
    full = {**header, "format": FORMAT, "members": table, "payload_size": offset}
    text = json.dumps(full, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()
    parts = [MAGIC, len(text).to_bytes(8, "big"), text, *(c for _, c in members)]
    hasher = new_hasher("blake3", size_hint=offset)
    for part in parts:
        hasher.update(part)
    return b"".join([*parts, hasher.digest()])


def header_length(head: bytes) -> int:
    """Length of the header from the first 16 bytes.

    Raises:
        CacheCorruptError: Not an entry file.
    """
    if len(head) < _PREFIX or head[: len(MAGIC)] != MAGIC:
        msg = "not a wattwise cache entry (bad magic or truncated)"
        raise CacheCorruptError(msg)
    return int.from_bytes(head[len(MAGIC) : _PREFIX], "big")


def read_header(head: bytes) -> dict[str, Any] | None:
    """The header from the start of an entry file, unverified; None if ``head`` is too short.

    Raises:
        CacheCorruptError: Not an entry file, or the header is not JSON.
    """
    size = header_length(head)
    if len(head) < _PREFIX + size:
        return None
    return _parse(head[_PREFIX : _PREFIX + size])


def _parse(text: bytes) -> dict[str, Any]:
    try:
        header = json.loads(text)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as err:
        msg = f"header is not valid JSON ({err})"
        raise CacheCorruptError(msg) from err
    if not isinstance(header, dict):
        msg = "header is not a JSON object"
        raise CacheCorruptError(msg)
    return header


def digest_of(data: bytes) -> str:
    """The stored content digest (hex) of an entry file, unverified."""
    return data[-_DIGEST:].hex()


def unpack(data: bytes, key: str) -> tuple[dict[str, Any], list[tuple[str, memoryview]]]:
    """Verify an entry file and split it into header and members.

    Raises:
        CacheCorruptError: Truncated, damaged (digest mismatch), or written for another key.
    """
    if len(data) < _PREFIX + _DIGEST:
        msg = f"truncated ({len(data)} bytes)"
        raise CacheCorruptError(msg)
    size = header_length(data)
    body, stored = memoryview(data)[:-_DIGEST], data[-_DIGEST:]
    hasher = new_hasher("blake3", size_hint=len(body))
    hasher.update(body)
    if hasher.digest() != stored:
        msg = "content hash mismatch: the file is damaged or truncated"
        raise CacheCorruptError(msg)
    if _PREFIX + size > len(body):
        msg = "header longer than the file"
        raise CacheCorruptError(msg)
    header = _parse(bytes(body[_PREFIX : _PREFIX + size]))
    if header.get("key") != key:
        msg = f"written for key {str(header.get('key'))[:16]!r}, not {key[:16]!r}"
        raise CacheCorruptError(msg)
    start = _PREFIX + size
    members = []
    for item in header.get("members", []):
        offset, length = int(item["offset"]), int(item["size"])
        if offset < 0 or length < 0 or start + offset + length > len(body):
            msg = "member table points outside the file"
            raise CacheCorruptError(msg)
        members.append((str(item["kind"]), body[start + offset : start + offset + length]))
    return header, members

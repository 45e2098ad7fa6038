"""``ArtifactCache``: content-addressed entries that know what they cost to produce.

Private or shared: the default local folder (``.wattwise/cache`` at the project root) is
*private*, and so is any location created with ``is_private=True``. Everything else (a
URL or path from ``WATTWISE_CACHE``, or any location passed explicitly) is *shared*.
Pickle is written only to a private cache by a function that opted in with
``allow_pickle=True``, and a pickled entry found in a shared cache is refused without
reading it: unpickling runs code chosen by whoever wrote the file. Even in a private
cache, a pickled entry is unpickled only when no one but the current user or root could
have written it (every component of its real path, as OpenSSH's ``StrictModes`` checks;
see ``wattwise.cache._trust``).

Every entry names its writer (``writer``: login name and host, in the header, covered by
the entry's content hash). A shared cache serves entries written by anyone on the team: a
safe-format entry from another user is used once its content hash and key check out. A
pickled entry whose header names another user is refused even where the folder checks
pass (a root-written entry in your cache, a copied-in file): the header is the writer's
own claim, so it can only refuse, never vouch.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import socket
import time
import warnings
from pathlib import Path
from typing import Any

from wattwise.cache import _container
from wattwise.cache._serialize import decode, encode, has_pickle
from wattwise.cache._stores import BaseStore, FsspecStore, LocalStore, StoredFile, redact_url
from wattwise.cache._trust import PathProblem
from wattwise.exceptions import CacheCorruptError, CacheError, CacheWarning, InvalidParameterError

#: Environment variable naming the cache location (path or fsspec URL); shared.
CACHE_VARIABLE = "WATTWISE_CACHE"
CACHE_DIR = "cache"
_HEAD = 64 * 1024
#: Temporary files older than this (s) are leftovers of crashed writers; gc removes them.
STALE_TEMPORARY_S = 3600.0


class UnsafeEntryError(CacheError):
    """An entry holds pickled data where pickle must not be loaded; it was not read."""


class UnsafeLocationError(UnsafeEntryError):
    """A pickled entry sits where someone other than the current user or root could have
    written it (a group- or world-writable folder, a file of another user, a link leading
    elsewhere); it was not unpickled."""


class ForeignEntryError(UnsafeLocationError):
    """A pickled entry whose header says another user wrote it; it was not unpickled."""


def current_user() -> str:
    """The login name, as the ledger records it for runs (``wattwise.store.login_name``:
    ``getpass.getuser()``, else ``uid-<n>``), so an entry's writer and a run's user match."""
    from wattwise.store import login_name

    return login_name()


def writer_identity() -> dict[str, str]:
    """Who writes an entry now: ``{"user": login name, "host": host name}``."""
    return {"user": current_user(), "host": socket.gethostname()}


def default_location() -> Path:
    """The private local cache folder: ``.wattwise/cache`` at the project root."""
    from wattwise.store import find_project_root

    return find_project_root() / ".wattwise" / CACHE_DIR


def files_dir(key: str) -> Path:
    """Where file and folder outputs of entry ``key`` are written back (always local)."""
    return default_location() / "files" / key


@dataclasses.dataclass(frozen=True)
class EntryInfo:
    """What an entry is. Units in the names.

    Attributes:
        key: The cache key (64 hex).
        size_bytes: Size of the entry file.
        modified_at: When the file was written (Unix s).
        created_at: When the entry was produced (Unix s, from the header).
        function: ``module:qualname`` of the function that produced it.
        version: The user's version of the function.
        cost: What producing it cost: ``energy_j``, ``co2e_g``, ``duration_s``, ``method``,
            ``how``, ``producer_run_id`` ... (see docs/explanation/cache.md).
        formats: Member formats (``npy``, ``safetensors``, ``bytes``, ``file``, ``pickle``).
        has_pickle: Whether the value holds pickled data.
        header: The whole header (key parts, wattwise version, writer ...).
    """

    key: str
    size_bytes: int
    modified_at: float
    created_at: float | None
    function: str
    version: str | None
    cost: dict[str, Any]
    formats: tuple[str, ...]
    has_pickle: bool
    header: dict[str, Any]

    @property
    def energy_j(self) -> float:
        """Energy it cost to produce, J (0 when unknown)."""
        return float(self.cost.get("energy_j") or 0.0)

    @property
    def writer(self) -> str | None:
        """``user@host`` that wrote it, as its header says (None for older entries)."""
        writer = self.header.get("writer")
        if not isinstance(writer, dict) or not writer.get("user"):
            return None
        host = writer.get("host")
        return f"{writer['user']}@{host}" if host else str(writer["user"])

    def is_foreign(self, user: str | None = None) -> bool:
        """Whether the header names a writer other than ``user`` (default: you)."""
        writer = self.header.get("writer")
        if not isinstance(writer, dict) or "user" not in writer:
            return False
        return str(writer["user"]) != (current_user() if user is None else user)

    def to_dict(self, *, full: bool = False) -> dict[str, Any]:
        """JSON shape (``full`` adds the key parts and the raw header)."""
        data = {
            "key": self.key,
            "size_bytes": self.size_bytes,
            "modified_at": self.modified_at,
            "created_at": self.created_at,
            "function": self.function,
            "version": self.version,
            "cost": self.cost,
            "formats": list(self.formats),
            "has_pickle": self.has_pickle,
            "writer": self.writer,
        }
        if full:
            data["key_parts"] = self.header.get("key_parts")
            data["wattwise_version"] = self.header.get("wattwise_version")
        return data


@dataclasses.dataclass(frozen=True)
class Hit:
    """A verified entry and its value."""

    value: Any
    info: EntryInfo


@dataclasses.dataclass(frozen=True)
class Problem:
    """An entry that failed ``verify``: ``corrupt`` or ``unsafe`` (pickle in a shared cache)."""

    key: str
    kind: str
    detail: str
    is_removed: bool

    def to_dict(self) -> dict[str, Any]:
        """JSON shape."""
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class GcResult:
    """What ``gc`` removed (or would remove, with ``dry_run``). Units in the names."""

    removed: tuple[EntryInfo, ...]
    kept: int
    freed_bytes: int
    remaining_bytes: int
    temporary_removed: int
    is_dry_run: bool

    def to_dict(self) -> dict[str, Any]:
        """JSON shape."""
        return {
            "removed": [e.to_dict() for e in self.removed],
            "kept": self.kept,
            "freed_bytes": self.freed_bytes,
            "remaining_bytes": self.remaining_bytes,
            "temporary_removed": self.temporary_removed,
            "is_dry_run": self.is_dry_run,
        }


def _info(stored: StoredFile, header: dict[str, Any]) -> EntryInfo:
    kinds = tuple(sorted({str(m.get("kind")) for m in header.get("members", [])}))
    spec = (header.get("value") or {}).get("spec")
    return EntryInfo(
        key=stored.key, size_bytes=stored.size_bytes, modified_at=stored.modified_at,
        created_at=header.get("created_at"), function=str(header.get("function", "?")),
        version=header.get("version"), cost=dict(header.get("cost") or {}), formats=kinds,
        has_pickle="pickle" in kinds or has_pickle(spec), header=header,
    )  # fmt: skip


class ArtifactCache:
    """A content-addressed cache of function results, local or shared.

    Args:
        location: A folder or an fsspec URL (``s3://bucket/team-cache``,
            ``memory://x``, ``file:///nfs/cache``). Default: ``WATTWISE_CACHE`` if set
            (shared), else ``.wattwise/cache`` at the project root (private).
        is_private: Whether only this user writes here (pickle allowed on opt-in). Default:
            True only for the default local folder.
        storage_options: fsspec options for URLs (credentials, endpoint ...).
    """

    def __init__(
        self,
        location: str | os.PathLike[str] | None = None,
        *,
        is_private: bool | None = None,
        storage_options: dict[str, Any] | None = None,
    ) -> None:
        default = default_location()
        if location is None:
            location = os.environ.get(CACHE_VARIABLE) or default
        text = os.fspath(location)
        self.store: BaseStore
        if "://" in text:
            self.store = FsspecStore(text, **(storage_options or {}))
            is_default = False
        else:
            self.store = LocalStore(Path(text))
            is_default = Path(text).resolve() == default.resolve()
        self.is_private = is_default if is_private is None else bool(is_private)
        #: Where the cache is, as shown and recorded (a password in a URL is masked).
        self.location = redact_url(text)

    def __repr__(self) -> str:
        kind = "private" if self.is_private else "shared"
        return f"ArtifactCache({self.location!r}, {kind})"

    # -- entries --------------------------------------------------------------

    def load(self, key: str, *, allow_pickle: bool = False) -> Hit | None:
        """The verified value of ``key``, or None on a miss.

        A damaged, truncated or misplaced entry is reported (:class:`CacheWarning`),
        removed, and treated as a miss: it is never returned.

        Raises:
            UnsafeEntryError: The entry holds pickled data and this cache is shared, or the
                caller did not allow pickle. The pickled bytes are not read.
            UnsafeLocationError: The entry holds pickled data and someone other than the
                current user or root could have written it. It is not unpickled.
            ForeignEntryError: The entry holds pickled data and its header names another
                writer. It is not unpickled.
            CacheError: The store cannot be read.
        """
        problem: PathProblem | None = None
        if allow_pickle and self.is_private:  # who could have written it, asked on the read
            data, problem = self.store.read_private(key)
        else:
            data = self.store.read(key)
        if data is None:
            return None
        try:
            header, members = _container.unpack(data, key)
        except CacheCorruptError as err:
            self._drop(key, str(err))
            return None
        info = _info(StoredFile(key, len(data), time.time()), header)
        if info.has_pickle:
            self._refuse_pickle(info, allow_pickle)
            if problem is not None:
                raise UnsafeLocationError(_untrusted_message(info, problem))
            if info.is_foreign():
                raise ForeignEntryError(_foreign_message(info))
        spec = (header.get("value") or {}).get("spec")
        try:
            value = decode(
                spec, members, files_dir=files_dir(key), allow_pickle=info.has_pickle
            )  # only reached with pickle when every check above passed
        except CacheCorruptError as err:
            self._drop(key, str(err))
            return None
        return Hit(value, info)

    def _refuse_pickle(self, info: EntryInfo, allow_pickle: bool) -> None:
        if not self.is_private:
            msg = (
                f"Refusing to load cache entry {info.key[:16]} ({info.function}) from the "
                f"shared cache {self.location}: it holds pickled data, and unpickling runs "
                "code chosen by whoever wrote it. Remove it with 'wattwise cache verify "
                "--fix', and return safe formats (arrays, tensors, JSON values) instead."
            )
            raise UnsafeEntryError(msg)
        if not allow_pickle:
            msg = (
                f"Refusing to load cache entry {info.key[:16]} ({info.function}): it holds "
                "pickled data but the function does not allow pickle. Pass "
                "allow_pickle=True to cached() if you wrote it, or remove it with "
                "'wattwise cache verify --fix'."
            )
            raise UnsafeEntryError(msg)

    def _drop(self, key: str, why: str) -> None:
        try:
            self.store.delete(key)
            done = "it was removed"
        except CacheError as err:  # a store we may read but not delete from (read-only)
            done = f"it could not be removed ({err})"
        msg = (
            f"Cache entry {key[:16]} in {self.location} was damaged ({why}); {done} "
            "and will be recomputed."
        )
        warnings.warn(msg, CacheWarning, stacklevel=4)

    def save(
        self, key: str, value: Any, *, header: dict[str, Any], allow_pickle: bool = False
    ) -> EntryInfo:
        """Write ``value`` under ``key`` atomically, with ``header`` facts (cost, function ...).

        Raises:
            CacheError: ``allow_pickle`` on a shared cache, or the store cannot be written.
            UnsupportedValueError: The value has no safe format and pickle is not allowed.
        """
        if allow_pickle and not self.is_private:
            msg = (
                f"allow_pickle=True needs a private local cache, but {self.location} is shared "
                "(pickles are never loaded from a shared cache). Drop allow_pickle, or use "
                "the default local cache (unset WATTWISE_CACHE)."
            )
            raise CacheError(msg)
        spec, members = encode(value, allow_pickle=allow_pickle)
        full = {**header, "key": key, "value": {"spec": spec}, "writer": writer_identity()}
        data = _container.pack(full, members)
        self.store.write(key, data)
        return _info(StoredFile(key, len(data), time.time()), full)

    def remove(self, key: str) -> bool:
        """Delete an entry; True if it existed."""
        return self.store.delete(key)

    def _header(self, stored: StoredFile) -> dict[str, Any] | None:
        head = self.store.read_head(stored.key, _HEAD)
        if head is None:
            return None
        try:
            header = _container.read_header(head)
            if header is None:
                full = self.store.read(stored.key)
                header = _container.read_header(full or b"")
        except CacheCorruptError:
            return {"function": "? (damaged: run 'wattwise cache verify')"}
        return header

    def entries(self) -> list[EntryInfo]:
        """Every entry, oldest first, from the headers (not verified; see :meth:`verify`)."""
        out = []
        for stored in self.store.files():
            header = self._header(stored)
            if header is not None:
                out.append(_info(stored, header))
        out.sort(key=lambda e: (e.modified_at, e.key))
        return out

    def info(self, ref: str) -> EntryInfo:
        """The entry whose key is or starts with ``ref`` (at least 4 characters).

        Raises:
            CacheError: No entry matches, or several do.
        """
        ref = ref.strip().lower()
        matches = [s for s in self.store.files() if s.key.startswith(ref)] if len(ref) >= 4 else []
        if len(matches) != 1:
            what = "No" if not matches else f"{len(matches)}"
            msg = (
                f"{what} cache entries match {ref!r} in {self.location}. List them with "
                "'wattwise cache ls' and give a longer prefix (4+ characters)."
            )
            raise CacheError(msg)
        header = self._header(matches[0]) or {}
        return _info(matches[0], header)

    def verify(self, *, fix: bool = False) -> list[Problem]:
        """Check every entry: content hash, key, member table, pickle in a shared cache, and
        pickle in a private cache where someone else could have written it.

        Nothing is unpickled or decoded. With ``fix``, bad entries are removed.
        """
        problems = []
        for stored in self.store.files():
            where: PathProblem | None = None
            if self.is_private:
                data, where = self.store.read_private(stored.key)
            else:
                data = self.store.read(stored.key)
            if data is None:
                continue
            kind = detail = ""
            try:
                header, _ = _container.unpack(data, stored.key)
            except CacheCorruptError as err:
                kind, detail = "corrupt", str(err)
            else:
                info = _info(stored, header)
                if info.has_pickle and not self.is_private:
                    kind, detail = "unsafe", "pickled data in a shared cache"
                elif info.has_pickle and where is not None:
                    kind, detail = "unsafe", f"pickled data, but {where.what}"
                elif info.has_pickle and info.is_foreign():
                    kind, detail = "unsafe", f"pickled data written by {info.writer}"
            if kind:
                removed = self.store.delete(stored.key) if fix else False
                problems.append(Problem(stored.key, kind, detail, removed))
        return problems

    def gc(
        self,
        *,
        max_size_bytes: int | None = None,
        older_than_s: float | None = None,
        evict: str = "cheapest",
        dry_run: bool = False,
        now: float | None = None,
    ) -> GcResult:
        """Remove entries older than ``older_than_s``, then shrink to ``max_size_bytes``.

        Args:
            max_size_bytes: Keep at most this many bytes of entries.
            older_than_s: Remove entries written more than this many seconds ago.
            evict: Order of removal to meet ``max_size_bytes``: ``cheapest`` (least
                energy to recompute per byte first, then oldest) or ``oldest``.
            dry_run: Only say what would be removed.
            now: The current time (Unix s), for tests.

        Raises:
            InvalidParameterError: ``evict`` is unknown or a bound is negative.
        """
        if evict not in ("cheapest", "oldest"):
            msg = f"The 'evict' parameter of gc must be 'cheapest' or 'oldest'. Got {evict!r}."
            raise InvalidParameterError(msg)
        for name, bound in (("max_size_bytes", max_size_bytes), ("older_than_s", older_than_s)):
            if bound is not None and not bound >= 0:
                msg = f"The {name!r} parameter of gc must be >= 0. Got {bound!r} instead."
                raise InvalidParameterError(msg)
        now = time.time() if now is None else now
        entries = self.entries()
        doomed: list[EntryInfo] = []
        if older_than_s is not None:
            doomed = [e for e in entries if now - e.modified_at > older_than_s]
        kept = [e for e in entries if e not in doomed]
        if max_size_bytes is not None:
            if evict == "cheapest":
                order = sorted(kept, key=lambda e: (e.energy_j / max(e.size_bytes, 1),
                                                    e.modified_at))  # fmt: skip
            else:
                order = sorted(kept, key=lambda e: e.modified_at)
            size = sum(e.size_bytes for e in kept)
            for entry in order:
                if size <= max_size_bytes:
                    break
                doomed.append(entry)
                size -= entry.size_bytes
            kept = [e for e in kept if e not in doomed]
        stale = [t for t in self.store.list_temporary() if now - t[2] > STALE_TEMPORARY_S]
        if not dry_run:
            for entry in doomed:
                self.store.delete(entry.key)
            for name, _, _ in stale:
                self.store.delete_temporary(name)
        return GcResult(
            removed=tuple(doomed), kept=len(kept),
            freed_bytes=sum(e.size_bytes for e in doomed),
            remaining_bytes=sum(e.size_bytes for e in kept),
            temporary_removed=len(stale), is_dry_run=dry_run,
        )  # fmt: skip


def _untrusted_message(info: EntryInfo, problem: PathProblem) -> str:
    return (
        f"Refusing to unpickle cache entry {info.key[:16]} ({info.function}): "
        f"{problem.what}, and pickled data is loaded only from where no one but you or root "
        f"can write (unpickling runs the writer's code). {problem.fix}."
    )


def _foreign_message(info: EntryInfo) -> str:
    return (
        f"Refusing to unpickle cache entry {info.key[:16]} ({info.function}): it was "
        f"written by {info.writer}, not by you ({current_user()}), and unpickling runs the "
        "writer's code. Remove it with 'wattwise cache verify --fix'."
    )


_SIZE = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*([kmgtp]?)(i?)(b?)\s*$", re.IGNORECASE)
_AGE = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*(s|m|min|h|d|w)?\s*$", re.IGNORECASE)
_AGE_S = {"s": 1, "m": 60, "min": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_size(text: str) -> int:
    """``"500MB"``, ``"10GiB"``, ``"1.5G"``, ``"2048"`` → bytes (k/M/G/T = 1000^n, Ki.. = 1024^n).

    Raises:
        InvalidParameterError: Not a size.
    """
    match = _SIZE.match(text)
    if not match:
        msg = (
            f"The 'max_size' parameter must be a size like 500MB, 10GiB or 2048 (bytes). "
            f"Got {text!r} instead."
        )
        raise InvalidParameterError(msg)
    number, prefix, binary, _ = match.groups()
    power = "kmgtp".find(prefix.lower()) + 1 if prefix else 0
    base = 1024 if binary else 1000
    return int(float(number) * base**power)


def parse_age(text: str) -> float:
    """``"30d"``, ``"12h"``, ``"90m"``, ``"45s"``, ``"2w"`` → seconds (bare number: seconds).

    Raises:
        InvalidParameterError: Not a duration.
    """
    match = _AGE.match(text)
    if not match:
        msg = (
            f"The 'older_than' parameter must be a duration like 30d, 12h, 90m or 45s. "
            f"Got {text!r} instead."
        )
        raise InvalidParameterError(msg)
    number, unit = match.groups()
    seconds = float(number) * _AGE_S[(unit or "s").lower()]
    if not math.isfinite(seconds):  # pragma: no cover - the regex admits finite numbers only
        msg = f"The 'older_than' parameter must be finite. Got {text!r} instead."
        raise InvalidParameterError(msg)
    return seconds

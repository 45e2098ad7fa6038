"""Kept cache hits: a hit whose booking the ledger did not take in time, kept until it does.

A cache hit's one ledger row (``add_reuse``) is written by a background thread
(``wattwise.cache._booking``). When the ledger does not take it in time (a hung mount, a
lock held by another process) or refuses it, the hit is *kept* here, beside the runs' spool
files and under the same rules, and booked later:

* one file per process and ledger, ``reuse-<pid>-<id>.hits`` in the spool folder: first in
  the user's state folder (``$XDG_STATE_HOME/wattwise/spool``: local disk, where the
  ledger's folder may be the mount that hangs), else ``spool/`` beside the ledger. Created
  ``0600``, JSON lines, each line flushed and ``fsync``'d; never pickle, and a hit holds no
  secret (the cache location is recorded with its password masked, as in the ledger);
* a header (the ledger, the owner process, why), then ``{"op": "hit", "hit_id", "event"}``
  per kept hit (``hit_id``: a random 128-bit id) and ``{"op": "booked", "hit_id"}`` once
  its booking landed after all. The owner removes the file once every hit in it is booked;
* :func:`replay_hits` books the hits of files whose owner is done (its process is gone; on
  another host: the file unchanged for :data:`OTHER_HOST_AFTER_S`), each under an exclusive
  ``flock`` so that two replaying processes never book the same file, and removes them.

Exactly once: a file of a live owner is left to it (its own booking may still land). Once
the owner is gone its bookings cannot land any more, so the replayer books each hit not
marked booked unless the ledger already holds the same hit (every field equal but ``user``,
which the ledger fills in): a booking that landed just before its owner died is not booked
twice. A partial last line (a crash while writing) is ignored.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import os
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from wattwise.exceptions import StoreError
from wattwise.store import _liveness
from wattwise.store._records import valid
from wattwise.store._reuse import ReuseEvent
from wattwise.store._spool import _write_all, create_file, ledger_key, spool_dirs

if TYPE_CHECKING:
    from wattwise.store._base import BaseRunStore

SUFFIX = ".hits"
PREFIX = "reuse-"
FORMAT = 1
#: A file written on another host is replayed once unchanged this long (no process check
#: reaches there; its owner's booking may wait on a hung mount for long).
OTHER_HOST_AFTER_S = 3600.0
_REUSE_NAMES = tuple(f.name for f in dataclasses.fields(ReuseEvent))
#: What makes two cache hits the same hit: every field but ``user`` (as ledger import).
_IDENTITY = tuple(name for name in _REUSE_NAMES if name != "user")


class HitSpool:
    """This process's kept hits for one ledger (one file, created at the first :meth:`keep`).

    Not thread-safe: one thread (the cache's keeper) uses it.

    Args:
        ledger: The ledger the hits belong to (its ``store.path``).
    """

    def __init__(self, ledger: Path) -> None:
        self.ledger = Path(ledger)
        #: The file kept hits go to now (None until the first one, and after removal).
        self.path: Path | None = None
        self._fd: int | None = None
        self._open: dict[str, Path] = {}  # kept and not booked: hit id → its file
        self._failed_dirs: set[Path] = set()

    def keep(self, event: ReuseEvent, *, reason: str) -> tuple[str, Path]:
        """Append one hit durably; return its id and file.

        Raises:
            StoreError: No spool folder could take it.
        """
        hit_id = uuid.uuid4().hex
        line = {"op": "hit", "hit_id": hit_id, "event": dataclasses.asdict(event)}
        path = self._append(line, reason)
        self._open[hit_id] = path
        return hit_id, path

    def booked(self, hit_id: str) -> None:
        """The hit's own booking landed after all: mark it, so no replay books it again.

        The file is removed once every hit in it is booked. Never raises: a mark that cannot
        be written leaves the hit to a replay, which finds it in the ledger and skips it.
        """
        path = self._open.pop(hit_id, None)
        if path is None:
            return
        if path == self.path and self._fd is not None:
            try:
                _write_all(self._fd, _line({"op": "booked", "hit_id": hit_id}))
                os.fsync(self._fd)
            except OSError:
                return
        if not any(p == path for p in self._open.values()):
            if path == self.path:
                self.close()
            with contextlib.suppress(OSError):
                path.unlink()

    def close(self) -> None:
        """Close the file (it stays on disk while it holds hits not booked)."""
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
        self._fd = None
        self.path = None

    def _append(self, line: dict[str, Any], reason: str) -> Path:
        data = _line(line)
        errors: list[str] = []
        for _ in range(3):
            if self._fd is None and not self._create(reason, errors):
                break
            assert self._fd is not None and self.path is not None
            try:
                _write_all(self._fd, data)
                os.fsync(self._fd)
                return self.path
            except OSError as err:
                errors.append(f"{self.path}: {err.strerror or err}")
                self._failed_dirs.add(self.path.parent)
                self.close()
        folders = " or ".join(str(f) for f in reversed(spool_dirs(self.ledger)))
        msg = (
            f"Cannot keep a cache hit in the spool ({'; '.join(errors)}). Free space or make "
            f"{folders} writable."
        )
        raise StoreError(msg)

    def _create(self, reason: str, errors: list[str]) -> bool:
        file_id = uuid.uuid4().hex
        header = {
            "op": "header", "kind": "hits", "format": FORMAT, "ledger": ledger_key(self.ledger),
            "file_id": file_id, "owner": {"host": socket.gethostname(), **_liveness.identity()},
            "reason": reason, "created_at": time.time(),
        }  # fmt: skip
        name = f"{PREFIX}{os.getpid()}-{file_id[:8]}{SUFFIX}"
        opened = create_file(reversed(spool_dirs(self.ledger)), name, _line(header),
                             self._failed_dirs, errors)  # the local state folder first
        if opened is None:
            return False
        self._fd, self.path = opened
        return True


def _line(data: dict[str, Any]) -> bytes:
    return (json.dumps(data, sort_keys=True, default=str) + "\n").encode()


@dataclasses.dataclass
class KeptFile:
    """A kept-hits file read back: its header, its hits, and those marked booked."""

    path: Path
    header: dict[str, Any]
    hits: dict[str, ReuseEvent]
    booked: set[str]

    @property
    def waiting(self) -> list[str]:
        """Ids of the hits not booked yet, in the file's order."""
        return [h for h in self.hits if h not in self.booked]

    def owner_done(self) -> bool:
        """True when the process that wrote the file is gone (no booking of it can land)."""
        owner = self.header.get("owner") or {}
        if owner.get("host") == socket.gethostname():
            return not _liveness.is_alive(owner.get("pid"), owner.get("start_time"))
        try:
            age = time.time() - self.path.stat().st_mtime
        except OSError:
            return False
        return age > OTHER_HOST_AFTER_S


def _parse(path: Path, raw: bytes) -> KeptFile | None:
    lines = raw.split(b"\n")
    lines.pop()  # after the last newline: empty, or a line cut short by a crash
    header: dict[str, Any] | None = None
    hits: dict[str, ReuseEvent] = {}
    booked: set[str] = set()
    for text in lines:
        try:
            entry = json.loads(text)
        except ValueError:
            break  # nothing after a damaged line is trusted
        if not isinstance(entry, dict):
            break
        if header is None:
            if entry.get("op") != "header" or entry.get("kind") != "hits" or entry.get(
                "format"
            ) != FORMAT:
                return None
            header = entry
            continue
        hit_id = entry.get("hit_id")
        if not isinstance(hit_id, str):
            break
        if entry.get("op") == "hit":
            event = _event(entry.get("event"))
            if event is None:
                break
            hits[hit_id] = event
        elif entry.get("op") == "booked":
            booked.add(hit_id)
    if header is None:
        return None
    return KeptFile(path, header, hits, booked)


def _event(data: Any) -> ReuseEvent | None:
    """A kept hit's row, checked (a file is data: a wrong field stops its reading)."""
    if not isinstance(data, dict) or set(data) != set(_REUSE_NAMES):
        return None
    try:
        event = ReuseEvent(**data)
    except TypeError:
        return None
    numbers = (event.at, event.energy_avoided_j, event.co2e_avoided_g, event.duration_avoided_s)
    texts = (event.cache_key, event.function, event.method, event.basis, event.cache_url)
    optional = (event.producer_run_id, event.consumer_run_id, event.user)
    if not all(type(n) in (int, float) for n in numbers) or not all(
        type(t) is str for t in texts
    ) or not all(o is None or type(o) is str for o in optional):  # fmt: skip
        return None
    return event


def read_kept_hits(path: Path) -> KeptFile | None:
    """Parse a kept-hits file; None if it is not one (or cannot be read)."""
    try:
        raw = path.read_bytes()
    except OSError:
        return None
    return _parse(path, raw)


def _header_ledger(path: Path) -> str | None:
    try:
        with path.open("rb") as handle:
            header = json.loads(handle.readline())
    except (OSError, ValueError):
        return None
    return header.get("ledger") if isinstance(header, dict) else None


def _files(ledger: Path) -> Iterator[Path]:
    key = ledger_key(ledger)
    seen: set[Path] = set()
    for folder in spool_dirs(ledger):
        try:
            names = sorted(os.listdir(folder))
        except OSError:
            continue
        for name in names:
            path = folder / name
            if name.startswith(PREFIX) and name.endswith(SUFFIX) and path not in seen:
                seen.add(path)
                if _header_ledger(path) == key:  # another ledger's file: one line read
                    yield path


def any_kept_hits(ledger: Path) -> bool:
    """Cheaply: is there any kept-hits file where ``ledger``'s could be (listings only)?"""
    for folder in spool_dirs(ledger):
        try:
            with os.scandir(folder) as entries:
                if any(e.name.startswith(PREFIX) and e.name.endswith(SUFFIX) for e in entries):
                    return True
        except OSError:
            continue
    return False


def kept_hit_files(ledger: Path) -> list[KeptFile]:
    """The kept-hits files of ``ledger`` read back (live processes' included).

    Read-only: nothing is booked, marked, locked or removed (what ``wattwise doctor`` shows;
    :func:`replay_hits` books them). :meth:`KeptFile.waiting` and
    :meth:`KeptFile.owner_done` say which hits wait and whether a replay would take them.
    """
    found = [read_kept_hits(path) for path in _files(ledger)]
    return [kept for kept in found if kept is not None]


def pending_hits(ledger: Path) -> int:
    """Kept hits of ``ledger`` not booked yet (live processes' included)."""
    return sum(len(kept.waiting) for kept in kept_hit_files(ledger))


def replay_hits(store: BaseRunStore) -> int:
    """Book the kept hits of ``store``'s ledger whose owner is done; remove their files.

    Each hit is booked once: one replaying process per file at a time (an exclusive
    ``flock``), a hit marked booked is skipped, and so is one the ledger already holds.

    Returns:
        The hits booked now (0 when there were none, or all had landed already).

    Raises:
        StoreError: The ledger cannot be written (what was booked before stays marked).
    """
    booked = 0
    for path in _files(store.path):
        booked += _replay_file(store, path)
    return booked


def _replay_file(store: BaseRunStore, path: Path) -> int:
    try:
        fd = os.open(path, os.O_RDWR | os.O_APPEND)
    except OSError:
        return 0  # removed meanwhile (replayed by another process), or not ours to write
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return 0  # another process replays it now
        try:
            if os.stat(path).st_ino != os.fstat(fd).st_ino:
                return 0  # replayed and removed between our open and our lock
        except OSError:
            return 0
        kept = _parse(path, _read_all(fd))
        if kept is None or kept.header.get("ledger") != ledger_key(store.path):
            return 0
        if not kept.owner_done():
            return 0  # its owner lives: its own booking may still land
        booked = 0
        present: dict[str, set[tuple[Any, ...]]] = {}
        for hit_id in kept.waiting:
            event = valid(kept.hits[hit_id])  # the text as the ledger holds it
            if event.cache_key not in present:
                present[event.cache_key] = {
                    _identity(e) for e in store.reuse_events(cache_key=event.cache_key)
                }
            same = present[event.cache_key]
            if _identity(event) not in same:
                store.add_reuse(event)
                same.add(_identity(event))
                booked += 1
            with contextlib.suppress(OSError):  # a mark lost is found in the ledger again
                _write_all(fd, _line({"op": "booked", "hit_id": hit_id}))
                os.fsync(fd)
        with contextlib.suppress(OSError):
            path.unlink()
        return booked
    finally:
        os.close(fd)  # releases the lock


def _read_all(fd: int) -> bytes:
    os.lseek(fd, 0, os.SEEK_SET)
    chunks = []
    while chunk := os.read(fd, 1 << 20):
        chunks.append(chunk)
    return b"".join(chunks)


def _identity(event: ReuseEvent) -> tuple[Any, ...]:
    return tuple(getattr(event, name) for name in _IDENTITY)

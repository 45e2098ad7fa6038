"""The spool: where a run's records go when the ledger cannot be written.

One file per run (and one per process that logs into another process's run), JSON lines,
append-only, each line flushed and ``fsync``'d before the write counts as done. The first
line is a header naming the ledger the file belongs to, the run (as inserted), the process
that owns the file and why the ledger could not be written; then one line per write the
ledger refused: ``flush`` (the run's cumulative state, new samples and metrics) or
``metrics``. Files live in ``spool/`` beside the ledger (``.wattwise/spool/``) or, where
that cannot be written, in the user's state folder (``$XDG_STATE_HOME/wattwise/spool``,
default ``~/.local/state/wattwise/spool``).

The next process that can write the ledger merges every file whose owner is done (its
process is gone, or the run has ended) through ``BaseRunStore.merge_spooled``, which is
idempotent: a merged file is marked in the ledger, in the same transaction, before the file
is removed. A partial last line (a crash while writing) is ignored. JSON only: a spool file
is data, never code.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import socket
import time
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from wattwise.exceptions import StoreError
from wattwise.store import _liveness
from wattwise.store._model import login_name

if TYPE_CHECKING:
    from wattwise.store._base import BaseRunStore

SPOOL_DIR = "spool"
SUFFIX = ".jsonl"
FORMAT = 1


def state_spool_dir(environ: dict[str, str] | None = None) -> Path:
    """The user's fallback spool folder: ``$XDG_STATE_HOME/wattwise/spool``."""
    env = os.environ if environ is None else environ
    base = env.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "wattwise" / SPOOL_DIR


def spool_dirs(ledger: Path) -> list[Path]:
    """Where spool files of ``ledger`` may be, in order of preference."""
    return [Path(os.path.abspath(ledger)).parent / SPOOL_DIR, state_spool_dir()]


def ledger_key(ledger: Path) -> str:
    """The ledger's absolute path, as written in spool headers."""
    return os.path.abspath(ledger)


class Spool:
    """An append-only, fsync'd JSON-lines file for one run's refused writes.

    Nothing is created until the first :meth:`append`. When a folder cannot be written (read
    only, full), the next one is tried; a new file repeats the header, so every file can be
    merged on its own.

    Args:
        ledger: The ledger these records belong to.
        run_id: The run.
        run: The run as it would have been inserted (``RunRecord`` fields), or None for a
            file that only carries metrics logged into a run owned by another process.
        prefer_local: Try the user's state folder first (the ledger's folder may be on a
            mount that hangs: a run whose ledger stopped answering spools there).
    """

    def __init__(
        self, ledger: Path, run_id: str, run: dict[str, Any] | None, *,
        prefer_local: bool = False,
    ) -> None:  # fmt: skip
        self.ledger = Path(ledger)
        self.prefer_local = prefer_local
        self.run_id = run_id
        if run is not None and run.get("user") is None:
            # Written by the run's own process: whoever merges it later, the run is ours.
            run = {**run, "user": login_name()}
        self.run = run
        self.path: Path | None = None
        self.lines = 0
        self._fd: int | None = None
        self._failed_dirs: set[Path] = set()

    def append(self, entry: dict[str, Any], *, reason: str) -> Path:
        """Write one line durably and return the file it went to.

        Raises:
            StoreError: No spool folder could take it.
        """
        data = (json.dumps(entry, sort_keys=True, default=str) + "\n").encode()
        errors: list[str] = []
        for _ in range(3):
            if self._fd is None:
                try:
                    self._open(reason, errors)
                except StoreError:
                    break
            assert self._fd is not None and self.path is not None
            try:
                _write_all(self._fd, data)
                os.fsync(self._fd)
                self.lines += 1
                return self.path
            except OSError as err:
                errors.append(f"{self.path}: {err.strerror or err}")
                self._failed_dirs.add(self.path.parent)
                self.close()
        msg = (
            f"Cannot write the spool of run {self.run_id[:8]} ({'; '.join(errors)}). Free "
            f"space or make {spool_dirs(self.ledger)[0]} or {state_spool_dir()} writable."
        )
        raise StoreError(msg)

    def _open(self, reason: str, errors: list[str]) -> None:
        header = {
            "op": "header", "format": FORMAT, "ledger": ledger_key(self.ledger),
            "run_id": self.run_id, "file_id": uuid.uuid4().hex, "run": self.run,
            "owner": {"host": socket.gethostname(), **_liveness.identity()},
            "reason": reason, "created_at": time.time(),
        }  # fmt: skip
        data = (json.dumps(header, sort_keys=True, default=str) + "\n").encode()
        folders = spool_dirs(self.ledger)
        name = f"{self.run_id}-{os.getpid()}-{str(header['file_id'])[:8]}{SUFFIX}"
        opened = create_file(reversed(folders) if self.prefer_local else folders, name, data,
                             self._failed_dirs, errors)  # fmt: skip
        if opened is None:
            raise StoreError("; ".join(errors))
        self._fd, self.path = opened
        self.lines = 1

    def close(self) -> None:
        """Close the file (it stays on disk for the next merge)."""
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
        self._fd = None
        self.path = None

    def discard(self) -> None:
        """Remove the file after its content was merged; the next append starts a new one."""
        path = self.path
        self.close()
        if path is not None:
            with contextlib.suppress(OSError):
                path.unlink()


def create_file(
    folders: Iterable[Path], name: str, first_line: bytes, failed_dirs: set[Path],
    errors: list[str],
) -> tuple[int, Path] | None:  # fmt: skip
    """Create ``name`` (0600, exclusive, append-only) in the first of ``folders`` that takes
    it with ``first_line`` written and synced; a folder that fails goes in ``failed_dirs``
    (skipped from then on) and its error in ``errors``. None when none did."""
    for folder in folders:
        if folder in failed_dirs:
            continue
        path = folder / name
        try:
            folder.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o600)
        except OSError as err:
            errors.append(f"{folder}: {err.strerror or err}")
            failed_dirs.add(folder)
            continue
        try:
            _write_all(fd, first_line)
            os.fsync(fd)
        except OSError as err:
            errors.append(f"{folder}: {err.strerror or err}")
            failed_dirs.add(folder)
            os.close(fd)
            with contextlib.suppress(OSError):
                path.unlink()
            continue
        return fd, path
    return None


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


@dataclasses.dataclass
class SpoolFile:
    """A spool file read back: its header and the complete lines after it."""

    path: Path
    header: dict[str, Any]
    entries: list[dict[str, Any]]

    @property
    def file_id(self) -> str:
        """The file's unique id (the ledger remembers it once merged)."""
        return str(self.header.get("file_id", ""))

    @property
    def run_id(self) -> str:
        """The run the file belongs to."""
        return str(self.header.get("run_id", ""))

    @property
    def ended(self) -> bool:
        """True once the run's final state is in the file (its owner writes no more)."""
        return any(e.get("final") for e in self.entries)

    def owner_done(self, *, margin_s: float = 60.0) -> bool:
        """True when no process will append to this file any more."""
        if self.ended and self.header.get("run") is not None:
            return True
        owner = self.header.get("owner") or {}
        if owner.get("host") == socket.gethostname():
            return not _liveness.is_alive(owner.get("pid"), owner.get("start_time"))
        try:
            age = time.time() - self.path.stat().st_mtime
        except OSError:
            return False
        return age > margin_s


def read_spool(path: Path) -> SpoolFile | None:
    """Parse a spool file; None if it is not one. A partial or damaged last line is ignored."""
    try:
        raw = path.read_bytes()
    except OSError:
        return None
    lines = raw.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    elif lines:
        lines.pop()  # no newline at the end: the write was cut short
    parsed: list[dict[str, Any]] = []
    for line in lines:
        try:
            entry = json.loads(line)
        except ValueError:
            break  # nothing after a damaged line is trusted
        if not isinstance(entry, dict):
            break
        parsed.append(entry)
    if not parsed or parsed[0].get("op") != "header" or parsed[0].get("format") != FORMAT:
        return None
    return SpoolFile(path, parsed[0], parsed[1:])


def _header_ledger(path: Path) -> str | None:
    try:
        with path.open("rb") as handle:
            header = json.loads(handle.readline())
    except (OSError, ValueError):
        return None
    return header.get("ledger") if isinstance(header, dict) else None


def spool_files(ledger: Path) -> Iterator[SpoolFile]:
    """Spool files that belong to ``ledger``, oldest first, run files before metric files."""
    key = ledger_key(ledger)
    found: list[tuple[int, float, SpoolFile]] = []
    seen: set[Path] = set()
    for folder in spool_dirs(ledger):
        try:
            names = sorted(os.listdir(folder))
        except OSError:
            continue
        for name in names:
            path = folder / name
            if not name.endswith(SUFFIX) or path in seen:
                continue
            seen.add(path)
            if _header_ledger(path) != key:
                continue  # another ledger's file: only its first line is read
            spooled = read_spool(path)
            if spooled is None or spooled.header.get("ledger") != key:
                continue
            try:
                mtime = path.stat().st_mtime
            except OSError:
                continue
            found.append((0 if spooled.header.get("run") else 1, mtime, spooled))
    found.sort(key=lambda item: (item[0], item[1]))
    for _, _, spooled in found:
        yield spooled


@dataclasses.dataclass(frozen=True)
class Merged:
    """One spool file merged into the ledger (and removed).

    Attributes:
        path: The spool file.
        run_id: Its run.
        entries: Writes merged (0: it had been merged before, only removed now).
    """

    path: Path
    run_id: str
    entries: int


def merge_spools(store: BaseRunStore, *, skip_run: str | None = None) -> list[Merged]:
    """Merge every spool file of ``store``'s ledger whose owner is done, then remove it.

    Files of live runs are left to their owner; a file whose run is not in the ledger yet
    (metrics logged into a run that is itself still spooled) is left for later.

    Raises:
        StoreError: The ledger cannot be written.
    """
    done: list[Merged] = []
    for spooled in spool_files(store.path):
        if spooled.run_id == skip_run or not spooled.owner_done():
            continue
        count = store.merge_spooled(spooled)
        if count is None:
            continue
        with contextlib.suppress(OSError):
            spooled.path.unlink()
        done.append(Merged(spooled.path, spooled.run_id, count))
    return done


def pending_spools(ledger: Path) -> list[SpoolFile]:
    """Spool files of ``ledger`` not merged yet (live runs' included)."""
    return list(spool_files(ledger))

"""The ledger on SQLite (WAL), safe for many processes and threads at once.

Follows :class:`~wattwise.store._base.BaseRunStore`: one ``SQLiteRunStore`` instance may be
shared by the threads of a process (a lock serialises its connection); any number of
processes may open the same file. Every write is one ``BEGIN IMMEDIATE`` transaction, so
concurrent writers queue on SQLite's lock (``busy_timeout``) and nothing is lost.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import hashlib
import json
import os
import socket
import sqlite3
import stat
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from wattwise.exceptions import (
    RunNotFoundError,
    SchemaVersionError,
    StoreCorruptError,
    StoreError,
)
from wattwise.store import _liveness
from wattwise.store._base import (
    AggregateRow,
    BaseRunStore,
    Metric,
    RecordGroup,
    RunMetric,
    Sample,
    add_run,
    check_group_by,
    check_record_keys,
    declared_role,
    group_values,
    mentions_in,
    rows_from_sums,
    sorted_groups,
    verified_artifact,
)
from wattwise.store._model import ComponentEnergy, RunRecord, RunStatus, job_id_of, login_name
from wattwise.store._records import (
    job_sets,
    json_text,
    row_values,
    valid,
    valid_points,
    valid_text,
)
from wattwise.store._reuse import ReuseEvent, ReuseTotals
from wattwise.store._schema import SCHEMA_TABLE, SCHEMA_VERSION, apply_migrations

if TYPE_CHECKING:
    from wattwise.store._spool import SpoolFile

#: Margin added to a remote run's stale window (3 of its own flush intervals + this).
STALE_AFTER_S = 30.0
_SQLITE_MAGIC = b"SQLite format 3\x00"
_BUSY_TIMEOUT_MS = 60_000

_RUN_COLUMNS = (
    "id",
    "name",
    "kind",
    "status",
    "parent_id",
    "study_id",
    "started_at",
    "ended_at",
    "heartbeat_at",
    "duration_s",
    "exit_code",
    "host",
    "pid",
    "energy_j",
    "energy_band_j",
    "machine_energy_j",
    "co2e_g",
    "co2e_band_g",
    "region",
    "tags",
    "params",
    "record",
    "user",
    "role",
    "job_id",
)
#: Columns a writer may set; ``job_id`` follows ``record`` (see ``_records.job_sets``).
_UPDATABLE = frozenset(_RUN_COLUMNS) - {"id", "started_at", "host", "pid", "user", "job_id"}
_COLUMNS_SQL = ", ".join(f'"{c}"' for c in _RUN_COLUMNS)  # "user" is reserved in PostgreSQL
_MARKS_SQL = ", ".join("?" for _ in _RUN_COLUMNS)
#: The role of a run as readers see it: the declared one, else inferred for older rows.
ROLE_SQL = (
    "COALESCE(role, CASE WHEN kind IN ('trial', 'study') OR study_id IS NOT NULL "
    "THEN 'tuning' ELSE 'final' END)"
)
_GROUP_SQL = {
    "none": "NULL",
    "user": '"user"',
    "host": "host",
    "status": "status",
    "role": ROLE_SQL,
    "region": "region",
    "kind": "kind",
    "study": "study_id",
    "job": "job_id",
    "month": "strftime('%Y-%m', started_at, 'unixepoch')",
    "tag": "t.value",
}
_BATCH = 5000
#: RunRecord's fields in order, for building records positionally.
_FIELDS = tuple(f.name for f in dataclasses.fields(RunRecord))
_TAGS, _PARAMS, _RECORD, _STATUS, _COMPONENTS = (
    _FIELDS.index(c) for c in ("tags", "params", "record", "status", "components")
)
T = TypeVar("T")
_REUSE_NAMES = tuple(f.name for f in dataclasses.fields(ReuseEvent))
_REUSE_SQL = ", ".join(f'"{name}"' for name in _REUSE_NAMES)
#: A cache hit; its ``user`` defaults to the consuming run's (the last parameter).
_INSERT_REUSE = (
    f"INSERT INTO reuse ({_REUSE_SQL}) VALUES ("
    + ", ".join("?" for name in _REUSE_NAMES if name != "user")
    + ', coalesce(?, (SELECT "user" FROM runs WHERE id = ?)))'
)


class _MissingLedger:
    """Stands in for the connection of a ledger that must exist and does not: reads fail."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def execute(self, *_args: Any) -> Any:
        msg = (
            f"No ledger at {self.path}: the file does not exist. Check the --store path "
            "(or WATTWISE_STORE); a ledger is created by the first run that writes to it."
        )
        raise StoreError(msg)

    def close(self) -> None:
        """Nothing to close."""


def _write_gitignore(folder: Path) -> None:
    """Make a ``.wattwise`` folder ignore itself, as pytest's cache does."""
    if folder.name != ".wattwise":
        return
    marker = folder / ".gitignore"
    if marker.exists():
        return
    with contextlib.suppress(OSError):
        marker.write_text("# Created by wattwise: the ledger and spool stay out of git.\n*\n")


class SQLiteRunStore(BaseRunStore):
    """The run ledger in one SQLite file.

    Opening never writes: reads use a read-only connection (``mode=ro``), so they work on a
    read-only file or folder and never create a ledger or a folder. The first write opens
    the file for writing, creating it (and ``.wattwise/`` with its ``.gitignore``) if needed.
    Reads never reap: a run whose tracker is gone is *shown* crashed (see
    :func:`wattwise.store._liveness.effective_state`); only :meth:`reap` writes that.
    However long a reader stays open, each read sees every write committed before it
    began: its connection holds no snapshot between reads, and a reader that could not
    notice a change by itself (a memory copy of a ledger being created or of an older
    one, views over an older schema, an immutable file, a file replaced at the path)
    checks the file before each read and opens it again when it changed.

    Args:
        path: The database file.
        stale_after_s: Margin added to a remote run's stale window (3 × its flush interval).
        must_exist: Reads fail with a one-line StoreError when the file does not exist
            (an explicit ``--store``); otherwise a missing ledger reads as empty.
        busy_timeout_s: How long a statement waits for another process's lock.
        defer: Open nothing until first used (no error at construction).
        readonly: Refuse every write with a one-line StoreError.
    """

    def __init__(
        self, path: str | os.PathLike[str], *, stale_after_s: float = STALE_AFTER_S,
        must_exist: bool = False, busy_timeout_s: float = _BUSY_TIMEOUT_MS / 1000,
        defer: bool = False, readonly: bool = False,
    ) -> None:  # fmt: skip
        # Bound to the file at construction: a process that changes its working folder
        # later (or a writer thread that outlives a chdir) still writes this ledger.
        self.path = Path(path).absolute()
        self.stale_after_s = stale_after_s
        self.must_exist = must_exist
        self.readonly = readonly
        self._busy_timeout_s = float(busy_timeout_s)
        self._lock = threading.RLock()
        self._host = socket.gethostname()
        self._conn: Any = None
        self._standin = False  # reading an empty stand-in for a ledger not created yet
        #: A reader's memory copy was taken from this read-only connection to the file,
        #: kept open to notice the file's later commits (see :meth:`_moved_on`).
        self._source: sqlite3.Connection | None = None
        self._immutable = False  # read as an immutable file: SQLite never looks again
        self._viewed = False  # an older schema shown current through temporary views
        #: What the reader saw of the file when it opened it (:meth:`_reader_state`).
        self._seen: tuple[Any, ...] | None = None
        self._writable = False
        self._identity: tuple[int, int] | None = None
        self._wal_identity: tuple[int, int] | None = None
        if not defer:
            self._guard(self._open_reader)

    @property
    def url(self) -> str:
        """``sqlite:///`` and the file's absolute path."""
        return f"sqlite:///{os.path.abspath(self.path)}"

    def reopen(self) -> SQLiteRunStore:
        """A new store on the same file and settings that opens nothing until used."""
        return SQLiteRunStore(
            self.path, stale_after_s=self.stale_after_s, must_exist=self.must_exist,
            busy_timeout_s=self._busy_timeout_s, defer=True, readonly=self.readonly,
        )  # fmt: skip

    def schema_version(self) -> int:
        """The ledger's schema version as stored (0: not created yet)."""
        if not self.path.exists():
            return 0

        def op() -> int:
            if self._writable:
                return _version(self._conn)
            conn = sqlite3.connect(self._uri(immutable=not os.access(self.path.parent, os.W_OK)),
                                   uri=True, timeout=self._busy_timeout_s)  # fmt: skip
            try:
                return _version(conn)
            finally:
                conn.close()

        result: int = self._guard(op)
        return result

    @property
    def busy_timeout_s(self) -> float:
        """Seconds a statement waits for another process's lock before failing."""
        return self._busy_timeout_s

    @busy_timeout_s.setter
    def busy_timeout_s(self, seconds: float) -> None:
        with self._lock:
            self._busy_timeout_s = float(seconds)
            if isinstance(self._conn, sqlite3.Connection):
                with contextlib.suppress(sqlite3.Error):
                    self._conn.execute(f"PRAGMA busy_timeout = {int(seconds * 1000)}")

    @property
    def writable(self) -> bool:
        """True once this store holds a connection open for writing."""
        return self._writable

    # -- bulk access (for this package's bulk paths) ----------------------------

    def bulk_read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """``fn(connection)`` on this store's read connection, under its lock.

        The bulk path of the ledger's own modules (``ledger export``, the report's grouped
        queries): plain SQL over the tables of :mod:`wattwise.store._schema` (an older
        ledger shows them through upgraded views). ``fn`` must only read, and keep no
        cursor past its return (fetch what it needs): a statement left part-read holds its
        snapshot, and the store's later reads would not see newer writes. Errors are the
        store's one-line :class:`StoreError`.
        """
        def op() -> T:
            return fn(self._conn)  # opened by _guard

        result: T = self._guard(op)
        return result

    def bulk_write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """``fn(connection)`` inside one write transaction (``BEGIN IMMEDIATE``) on a
        current schema, under this store's lock: it lands whole or not at all.

        The bulk path of ``ledger import``; ``fn`` keeps the contract's rules (ids are
        global, ``user`` and ``job_id`` as :meth:`insert_run` fills them). Errors are the
        store's one-line :class:`StoreError`.
        """

        def op() -> T:
            with self._write() as conn:
                return fn(conn)

        result: T = self._guard(op)
        return result

    # -- plumbing -------------------------------------------------------------

    def _guard(self, fn: Any, *args: Any) -> Any:
        try:
            with self._lock:
                if self._conn is not None and not self._writable and self._moved_on():
                    self._drop_reader()  # the file changed in a way this reader cannot see
                if self._conn is None:
                    self._open_reader()
                return fn(*args)
        except sqlite3.DatabaseError as err:
            raise self._translate(err) from err
        except UnicodeError as err:  # writes make text valid first: a read's argument
            msg = (
                f"Cannot use a text that is not valid Unicode with the ledger at {self.path} "
                f"({err}): it holds UTF-8 text only. Pass the value as valid text."
            )
            raise StoreError(msg) from err
        except OSError as err:
            msg = (
                f"Cannot use the ledger at {self.path}: {err.strerror or err}. Check the "
                "folder, or point WATTWISE_STORE at another file."
            )
            raise StoreError(msg) from err

    def _translate(self, err: sqlite3.Error) -> StoreError:
        text = str(err)
        if "not a database" in text or "malformed" in text or "no such table" in text:
            msg = (
                f"The ledger at {self.path} is damaged or not a wattwise ledger ({text}). "
                f"Move it aside (mv {self.path} {self.path}.bad) to start a new one."
            )
            return StoreCorruptError(msg)
        if "readonly" in text or "unable to open" in text:
            msg = (
                f"Cannot write the ledger at {self.path} ({text}). Check the file's "
                "permissions, or point WATTWISE_STORE at a writable file."
            )
            return StoreError(msg)
        if "locked" in text or "busy" in text:
            msg = (
                f"The ledger at {self.path} is locked by another process for longer than "
                f"the busy timeout ({self._busy_timeout_s:g} s) ({text}). Retry later."
            )
            return StoreError(msg)
        if "full" in text:
            msg = (
                f"Cannot write the ledger at {self.path}: the disk is full ({text}). Free "
                "space, or point WATTWISE_STORE at another disk."
            )
            return StoreError(msg)
        return StoreError(f"Ledger error at {self.path}: {text}.")

    def _uri(self, *, immutable: bool = False) -> str:
        quoted = urllib.parse.quote(os.path.abspath(self.path))
        return f"file:{quoted}?mode=ro" + ("&immutable=1" if immutable else "")

    def _open_reader(self) -> None:
        """A read-only connection: the file, or an empty in-memory ledger if it is missing."""
        if self._conn is not None:
            return
        self._standin = self._immutable = self._viewed = False
        self._seen = None
        if not self.path.exists():
            self._conn = _MissingLedger(self.path) if self.must_exist else _memory_ledger()
            self._standin = True
            return
        if self.path.is_dir():
            msg = f"The ledger path {self.path} is a folder. Point --store at a file in it."
            raise StoreError(msg)
        self._check_header()
        # Which file, and its state, before it is opened: a change after this is noticed.
        files = _stamp(self.path), _stamp(f"{self.path}-wal")
        conn: sqlite3.Connection | None = None
        for immutable in (False, True):
            conn = sqlite3.connect(
                self._uri(immutable=immutable), uri=True, timeout=self._busy_timeout_s,
                isolation_level=None, check_same_thread=False,
            )  # fmt: skip
            try:
                # Read before anything else: a commit or migration after them shows later.
                data_version = conn.execute("PRAGMA data_version").fetchone()[0]
                cookie = conn.execute("PRAGMA main.schema_version").fetchone()[0]
                version = _version(conn)
                tables = conn.execute(
                    "SELECT count(*) FROM sqlite_master WHERE type = 'table'"
                ).fetchone()[0]
                break
            except sqlite3.OperationalError as err:
                conn.close()
                # A WAL ledger in a read-only folder cannot get its -shm file: read it as an
                # immutable file instead (nobody can be writing it there).
                if immutable or "unable to open" not in str(err):
                    raise
        assert conn is not None
        self._immutable = immutable
        source: sqlite3.Connection | None = None
        if _ADDITIVE_FROM <= version < SCHEMA_VERSION and _view_current(conn):
            version = SCHEMA_VERSION  # read in place through a view (nothing copied)
            self._viewed = True
        if version < SCHEMA_VERSION:
            # An older (or empty) ledger: upgrade a copy in memory; only writers migrate.
            # (Judged on the copy: another process may be creating the file right now.)
            # The file's connection stays open: a commit to the file (its creation
            # finished, a writer's migration) makes the next read copy it again.
            memory = _memory_ledger(migrate=False)
            conn.backup(memory)
            source, conn = conn, memory
            version = _version(conn)
            tables = conn.execute(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table'"
            ).fetchone()[0]
            if version < SCHEMA_VERSION and not (version == 0 and tables):
                _migrate(conn, version)
        if version > SCHEMA_VERSION or (version == 0 and tables):
            conn.close()
            if source is not None:
                source.close()
        if version > SCHEMA_VERSION:
            msg = (
                f"The ledger at {self.path} has schema version {version}, newer than this "
                f"wattwise understands ({SCHEMA_VERSION}). Upgrade wattwise: "
                "pip install -U wattwise."
            )
            raise SchemaVersionError(msg)
        if version == 0 and tables:
            msg = (
                f"The file {self.path} is an SQLite database but not a wattwise ledger. "
                "Point WATTWISE_STORE at another file."
            )
            raise StoreCorruptError(msg)
        self._conn, self._source = conn, source
        self._seen = self._reader_state(files, data_version, cookie)

    def _reader_state(
        self, files: tuple[tuple[int, ...] | None, tuple[int, ...] | None] | None = None,
        data_version: int | None = None, cookie: int | None = None,
    ) -> tuple[Any, ...]:  # fmt: skip
        """What a reader compares to know it still sees the ledger at its path: the file's
        identity, plus what its way of reading cannot notice by itself.

        A plain read-only connection sees every commit at its next statement (autocommit:
        no snapshot is held between reads). A memory copy sees none: the file's
        ``data_version`` tells when another connection committed. Temporary views hide the
        columns a writer's migration adds: the schema cookie tells. An immutable file is
        never looked at again by SQLite: the sizes and times of the file and its WAL tell.
        Without arguments the values are read now (the file itself first).
        """
        if files is None:  # the WAL's only where it is compared (one stat per read)
            wal = _stamp(f"{self.path}-wal") if self._immutable else None
            files = _stamp(self.path), wal
        main = files[0]
        state: list[Any] = [None if main is None else main[:2]]  # device and inode
        if self._immutable:
            state.append(files)
        if self._source is not None:
            if data_version is None:
                data_version = self._source.execute("PRAGMA data_version").fetchone()[0]
            state.append(data_version)
        elif self._viewed:
            if cookie is None:
                cookie = self._conn.execute("PRAGMA main.schema_version").fetchone()[0]
            state.append(cookie)
        return tuple(state)

    def _moved_on(self) -> bool:
        """Whether the ledger at the path changed in a way this reader would not see."""
        if self._standin:
            return self.path.exists()  # created since: read the file
        if self._seen is None:
            return False
        return self._reader_state() != self._seen

    def _drop_reader(self) -> None:
        """Close the read connections; the next use opens the ledger afresh."""
        for conn in (self._conn, self._source):
            if conn is not None:
                with contextlib.suppress(sqlite3.Error):
                    conn.close()
        self._conn = self._source = None
        self._seen = None

    def _ensure_writable(self) -> sqlite3.Connection:
        """Switch to a connection that can write, creating the ledger if needed."""
        if self._writable:
            conn: sqlite3.Connection = self._conn
            return conn
        if self.readonly:
            msg = (
                f"The ledger at {self.path} was opened read-only and this step writes. Open "
                "it with get_store(url) (readonly=False) to write."
            )
            raise StoreError(msg)
        self._drop_reader()
        self._standin = self._immutable = self._viewed = False
        self._check_header()
        folder = self.path.parent
        if not folder.exists():
            folder.mkdir(parents=True, exist_ok=True)
        _write_gitignore(folder)
        conn = sqlite3.connect(
            self.path, timeout=self._busy_timeout_s, isolation_level=None,
            check_same_thread=False,
        )  # fmt: skip
        self._conn = conn
        try:
            self._init_schema()
            st = os.stat(self.path)
        except BaseException:
            conn.close()
            self._conn = None
            raise
        self._identity = (st.st_dev, st.st_ino)
        self._wal_identity = None
        self._writable = True
        return conn

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        conn = self._ensure_writable()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        if self._wal_identity is None:
            with contextlib.suppress(OSError):
                st = os.stat(f"{self.path}-wal")
                self._wal_identity = (st.st_dev, st.st_ino)

    def _init_schema(self) -> None:
        conn = self._conn
        conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout_s * 1000)}")
        # Switching to WAL needs an exclusive lock and SQLite answers "database is locked"
        # at once, without its busy handler, when another process is creating the same
        # ledger: retry for as long as the busy timeout allows.
        deadline = time.monotonic() + self._busy_timeout_s
        while conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
            try:
                conn.execute("PRAGMA journal_mode = WAL")
            except sqlite3.OperationalError as err:
                if "locked" not in str(err) or time.monotonic() > deadline:
                    raise
                time.sleep(0.01)
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA foreign_keys = ON")
        version = _version(conn)
        if version == SCHEMA_VERSION:
            return
        with self._write_raw():
            version = _version(conn)
            if version > SCHEMA_VERSION:
                msg = (
                    f"The ledger at {self.path} has schema version {version}, newer than this "
                    f"wattwise understands ({SCHEMA_VERSION}). Upgrade wattwise: "
                    "pip install -U wattwise."
                )
                raise SchemaVersionError(msg)
            if version == 0 and conn.execute(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table'"
            ).fetchone()[0]:
                msg = (
                    f"The file {self.path} is an SQLite database but not a wattwise ledger. "
                    "Point WATTWISE_STORE at another file."
                )
                raise StoreCorruptError(msg)
            _migrate(conn, version)

    @contextlib.contextmanager
    def _write_raw(self) -> Iterator[sqlite3.Connection]:
        conn: sqlite3.Connection = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def _check_header(self) -> None:
        """Refuse a file that is not SQLite before SQLite sees it.

        SQLite reads page 1 from a leftover ``-wal`` file before the file itself, so a
        ledger overwritten while in use could otherwise be taken for the old one.

        A regular file's header is read by SQLite itself, as an immutable file (which never
        looks at a WAL), not through a descriptor of ours: closing any descriptor of a file
        drops every POSIX lock this process holds on it, SQLite's included. Another store
        of this process would lose its locks; another process, taking itself for the
        ledger's last user, would then delete the WAL and its ``-shm`` index under that
        store, whose reads would never see a later write again.
        """
        try:
            regular = stat.S_ISREG(os.stat(self.path).st_mode)
        except FileNotFoundError:
            return
        head = b""
        if regular:
            try:
                conn = sqlite3.connect(self._uri(immutable=True), uri=True, isolation_level=None)
                try:
                    conn.execute("PRAGMA schema_version").fetchone()
                    return
                finally:
                    conn.close()
            except sqlite3.DatabaseError as err:
                if "not a database" in str(err):
                    head = b"not SQLite"
                else:
                    regular = False  # SQLite cannot open it: let the system say why
        if not regular:  # a folder or a named pipe (an open that blocks), or unreadable
            try:
                with open(self.path, "rb") as handle:
                    head = handle.read(16)
            except FileNotFoundError:
                return
        if head and head != _SQLITE_MAGIC:
            msg = (
                f"The ledger at {self.path} is damaged or not a wattwise ledger (file is not "
                f"a database). Move it aside (mv {self.path} {self.path}.bad) to start a new "
                "one."
            )
            raise StoreCorruptError(msg)

    def verify(self) -> None:
        """Check that the file this store writes is still the ledger at its path.

        Raises:
            StoreError: The ledger file was replaced or removed, or its WAL was deleted,
                since this store opened it (call :meth:`reset` and write again).
        """
        if not self._writable or self._identity is None:
            return
        try:
            st = os.stat(self.path)
        except OSError as err:
            msg = f"The ledger at {self.path} was removed while in use ({err.strerror})."
            raise StoreError(msg) from err
        if (st.st_dev, st.st_ino) != self._identity:
            msg = f"The ledger at {self.path} was replaced by another file while in use."
            raise StoreError(msg)
        if self._wal_identity is not None:
            try:
                wal = os.stat(f"{self.path}-wal")
            except OSError:
                wal = None
            if wal is None or (wal.st_dev, wal.st_ino) != self._wal_identity:
                msg = f"The ledger's write-ahead log {self.path}-wal was deleted while in use."
                raise StoreError(msg)

    def reset(self) -> None:
        """Drop the connection; the next use opens the ledger afresh."""
        with self._lock:
            self._drop_reader()
            self._standin = self._writable = False
            self._identity = self._wal_identity = None

    def close(self) -> None:
        """Close the connection. The store cannot be used afterwards."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
            if self._source is not None:
                self._source.close()

    # -- writes ---------------------------------------------------------------

    def insert_run(self, run: RunRecord) -> None:
        """Add a new run (status running) with its components; a missing ``user`` is this
        process's login name (set on ``run`` too)."""
        if run.user is None:
            run.user = login_name()
        values = row_values(run, _RUN_COLUMNS)

        def op() -> None:
            with self._write() as conn:
                conn.execute(
                    f"INSERT INTO runs ({_COLUMNS_SQL}) "
                    f"VALUES ({_MARKS_SQL})",
                    values,
                )
                _replace_components(conn, run.id, run.components)

        self._guard(op)

    def flush_run(
        self,
        run_id: str,
        fields: dict[str, Any],
        *,
        components: Sequence[ComponentEnergy] = (),
        samples: Iterable[Sample] = (),
        metrics: Iterable[Metric] = (),
    ) -> None:
        """Write a run's latest state in one transaction.

        Args:
            run_id: The run.
            fields: Run columns to set (``status``, ``energy_j``, ``heartbeat_at``, ...).
            components: Per-component energy, replacing what was stored.
            samples: New power samples ``(t_s, component, power_w, energy_j)``.
            metrics: New metric points ``(step, key, value, logged_at)``.
        """
        unknown = set(fields) - _UPDATABLE
        if unknown:
            msg = f"Cannot update run columns {sorted(unknown)}; allowed: {sorted(_UPDATABLE)}."
            raise StoreError(msg)
        cols, values = job_sets(sorted(fields), fields)
        samples, metrics = valid_points(list(samples), 1), valid_points(list(metrics), 1)

        def op() -> None:
            with self._write() as conn:
                if cols:
                    sets = _sets(cols)
                    cur = conn.execute(f"UPDATE runs SET {sets} WHERE id = ?", [*values, run_id])
                    if cur.rowcount == 0:
                        msg = f"Run {run_id!r} is not in the ledger at {self.path}."
                        raise RunNotFoundError(msg)
                if components:
                    _replace_components(conn, run_id, components)
                conn.executemany(
                    "INSERT INTO samples (run_id, t_s, component, power_w, energy_j) "
                    "VALUES (?, ?, ?, ?, ?)",
                    [(run_id, *s) for s in samples],
                )
                conn.executemany(
                    "INSERT INTO metrics (run_id, step, key, value, logged_at) "
                    "VALUES (?, ?, ?, ?, ?)",
                    [(run_id, *m) for m in metrics],
                )

        self._guard(op)

    def _liveness(self, run: RunRecord, now: float) -> _liveness.Liveness:
        return _liveness.effective_state(
            host=run.host, pid=run.pid, heartbeat_at=run.heartbeat_at, record=run.record,
            now=now, this_host=self._host, margin_s=self.stale_after_s,
        )  # fmt: skip

    def reap(self, *, now: float | None = None) -> list[str]:
        """Persist ``crashed`` for every running run whose tracker and command are gone.

        This is a write, for writers only (readers show the same verdict without writing).
        On this host a run is gone when its tracker process is (pid plus start time) and so
        is its command; elsewhere when its heartbeat is older than three of its own flush
        intervals plus ``stale_after_s``. Energy stays as last flushed.

        Returns:
            Ids of the runs marked crashed.
        """
        now = time.time() if now is None else now

        def op() -> list[str]:
            conn = self._ensure_writable()
            rows = conn.execute("SELECT * FROM runs WHERE status = ?",
                                (RunStatus.RUNNING.value,)).fetchall()  # fmt: skip
            dead = []
            for run in self._decode_runs(rows, judge=False):
                verdict = self._liveness(run, now)
                if not verdict.alive:
                    dead.append((run.id, verdict.note))
            marked = []
            if dead:
                with self._write() as conn:
                    for run_id, note in dead:
                        cur = conn.execute(
                            "UPDATE runs SET status = ?, ended_at = heartbeat_at "
                            "WHERE id = ? AND status = ?",
                            (RunStatus.CRASHED.value, run_id, RunStatus.RUNNING.value),
                        )
                        if not cur.rowcount:
                            continue  # another reaper (or the run itself) got there first
                        marked.append(run_id)
                        if note:
                            _annotate(conn, run_id, "notes", f"marked crashed: {note}")
            return marked

        result: list[str] = self._guard(op)
        return result

    def merge_spooled(self, spooled: SpoolFile) -> int | None:
        """Merge one spool file into the ledger, in one transaction; idempotent.

        The run is inserted if the ledger lacks it; each spooled flush sets the run's fields
        unless the ledger already holds a newer state; samples and metrics are added. The
        file's id is recorded with the run (``record["spooled"]``, and a line in
        ``record["notes"]``), so merging the same file twice changes nothing.

        Returns:
            The number of entries merged, 0 if the file was merged before, or None when it
            cannot be merged yet (its run is not in the ledger and the file cannot add it).
        """
        run_id = spooled.run_id
        header = spooled.header

        def op() -> int | None:
            with self._write() as conn:
                done = conn.execute(
                    "SELECT 1 FROM annotations WHERE run_id = ? AND key = 'spooled' "
                    "AND value LIKE ?", (run_id, f'%"{spooled.file_id}"%'),
                ).fetchone()  # fmt: skip
                if done is not None:
                    return 0
                run = header.get("run")
                if run is not None:
                    values = row_values(run, _RUN_COLUMNS)
                    conn.execute(
                        f"INSERT OR IGNORE INTO runs ({_COLUMNS_SQL}) "
                        f"VALUES ({_MARKS_SQL})", values,
                    )  # fmt: skip
                if conn.execute("SELECT 1 FROM runs WHERE id = ?", (run_id,)).fetchone() is None:
                    return None
                merged = 0
                for entry in spooled.entries:
                    _apply_spooled(conn, run_id, valid(entry))
                    merged += 1
                fact = {
                    "file_id": spooled.file_id, "file": str(spooled.path), "entries": merged,
                    "reason": header.get("reason"), "merged_at": time.time(),
                    "owner_pid": (header.get("owner") or {}).get("pid"),
                }  # fmt: skip
                _annotate(conn, run_id, "spooled", fact)
                what = "its records" if run is not None else "metrics logged by another process"
                _annotate(conn, run_id, "notes", (
                    f"{what} were spooled to {spooled.path} because the ledger could not be "
                    f"written ({header.get('reason')}); merged by pid {os.getpid()}"))
                return merged

        result: int | None = self._guard(op)
        return result

    def resync_run(
        self, run: RunRecord, fields: dict[str, Any], *, components: Sequence[ComponentEnergy],
        metrics: Sequence[Metric],
    ) -> None:  # fmt: skip
        """Make the ledger hold a run's whole state again after the file changed under it.

        Inserts the run if missing (a ledger replaced mid-run), sets ``fields`` and, if the
        ledger holds fewer metric points than ``metrics`` (all the run logged), replaces
        them. Used by the run's own writer only (so a missing ``user`` is this process's).
        """
        if run.user is None:
            run.user = login_name()
        values = row_values(run, _RUN_COLUMNS)
        cols, sets = job_sets(sorted(set(fields) & _UPDATABLE), fields)
        metrics = valid_points(list(metrics), 1)

        def op() -> None:
            with self._write() as conn:
                conn.execute(
                    f"INSERT OR IGNORE INTO runs ({_COLUMNS_SQL}) "
                    f"VALUES ({_MARKS_SQL})", values,
                )  # fmt: skip
                if cols:
                    conn.execute(f"UPDATE runs SET {_sets(cols)} WHERE id = ?", [*sets, run.id])
                _replace_components(conn, run.id, components)
                have = conn.execute(
                    "SELECT count(*) FROM metrics WHERE run_id = ?", (run.id,)
                ).fetchone()[0]
                if have < len(metrics):
                    conn.execute("DELETE FROM metrics WHERE run_id = ?", (run.id,))
                    conn.executemany(
                        "INSERT INTO metrics (run_id, step, key, value, logged_at) "
                        "VALUES (?, ?, ?, ?, ?)", [(run.id, *m) for m in metrics],
                    )  # fmt: skip

        self._guard(op)

    def put_artifact(
        self, run_id: str, name: str, content: bytes, *, created_at: float | None = None
    ) -> str:
        """Store a run's artifact (the git diff), replacing one of the same name.

        Content is kept once per sha256 (a blob) and shared by every artifact that has
        it, so the same diff recorded by many runs costs its size once.

        Returns:
            The content's sha256 (hex).
        """
        digest = hashlib.sha256(content).hexdigest()
        when = time.time() if created_at is None else created_at
        name = valid_text(name)

        def op() -> None:
            with self._write() as conn:
                _put_blob(conn, digest, content)
                conn.execute(
                    "DELETE FROM artifacts WHERE run_id = ? AND name = ?", (run_id, name)
                )  # the trigger frees the old blob when no other artifact uses it
                conn.execute(
                    "INSERT INTO artifacts (run_id, name, sha256, size_bytes, created_at) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (run_id, name, digest, len(content), when),
                )

        self._guard(op)
        return digest

    def annotate_run(self, run_id: str, key: str, value: Any, *, append: bool = False) -> None:
        """Attach a fact to a run's record from another process (a ``wattwise run`` child).

        The run's own process rewrites the ``record`` column as it goes, so facts from
        elsewhere are kept in their own table and merged into ``record[key]`` on read:
        set (last write wins) or, with ``append``, added to a list.

        Raises:
            RunNotFoundError: No such run.
        """
        key, text = valid_text(key), json_text(value)
        job = job_id_of({key: valid(value)}) if not append else None

        def op() -> None:
            with self._write() as conn:
                if conn.execute("SELECT 1 FROM runs WHERE id = ?", (run_id,)).fetchone() is None:
                    msg = f"Run {run_id!r} is not in the ledger at {self.path}."
                    raise RunNotFoundError(msg)
                conn.execute(
                    "INSERT INTO annotations (run_id, key, value, is_append, written_at) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (run_id, key, text, int(append), time.time()),
                )
                if job is not None:  # the record's job, set from another process
                    conn.execute("UPDATE runs SET job_id = ? WHERE id = ?", (job, run_id))

        self._guard(op)

    def add_reuse(self, event: ReuseEvent) -> None:
        """Record a cache hit and the energy it avoided; a missing ``user`` is the
        consuming run's."""
        values = [getattr(valid(event), name) for name in _REUSE_NAMES]

        def op() -> None:
            with self._write() as conn:
                conn.execute(_INSERT_REUSE, [*values, event.consumer_run_id])

        self._guard(op)

    # -- reads ----------------------------------------------------------------

    def get_artifact(self, run_id: str, name: str) -> bytes | None:
        """A run's artifact, checked against its stored sha256; None if there is none.

        Raises:
            StoreCorruptError: The content does not match its hash.
        """

        def op() -> tuple[str, bytes] | None:
            row = self._conn.execute(
                "SELECT a.sha256, b.content FROM artifacts AS a "
                "JOIN blobs AS b ON b.sha256 = a.sha256 WHERE a.run_id = ? AND a.name = ?",
                (run_id, name),
            ).fetchone()
            return None if row is None else (row[0], bytes(row[1]))

        found: tuple[str, bytes] | None = self._guard(op)
        if found is None:
            return None
        digest, content = found
        return verified_artifact(content, digest, name=name, run_id=run_id, where=self.path)

    def artifacts(self, run_id: str) -> list[dict[str, Any]]:
        """A run's artifacts without their content: ``name``, ``sha256``, ``size_bytes``."""

        def op() -> list[dict[str, Any]]:
            return [
                {"name": r[0], "sha256": r[1], "size_bytes": r[2], "created_at": r[3]}
                for r in self._conn.execute(
                    "SELECT name, sha256, size_bytes, created_at FROM artifacts "
                    "WHERE run_id = ? ORDER BY name",
                    (run_id,),
                )
            ]

        result: list[dict[str, Any]] = self._guard(op)
        return result

    def reuse_events(
        self, *, cache_key: str | None = None, consumer_run_id: str | None = None
    ) -> list[ReuseEvent]:
        """Cache hits, oldest first, optionally for one entry or one consuming run."""
        where, args = [], []
        if cache_key is not None:
            where.append("cache_key = ?")
            args.append(cache_key)
        if consumer_run_id is not None:
            where.append("consumer_run_id = ?")
            args.append(consumer_run_id)
        sql = f"SELECT {_REUSE_SQL} FROM reuse"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY seq"

        def op() -> list[ReuseEvent]:
            return [ReuseEvent(*row) for row in self._conn.execute(sql, args)]

        result: list[ReuseEvent] = self._guard(op)
        return result

    def reuse_totals(self) -> ReuseTotals:
        """What every cache hit recorded in this ledger avoided, summed."""

        def op() -> ReuseTotals:
            row = self._conn.execute(
                "SELECT count(*), coalesce(sum(energy_avoided_j), 0), "
                "coalesce(sum(co2e_avoided_g), 0), coalesce(sum(duration_avoided_s), 0) "
                "FROM reuse"
            ).fetchone()
            return ReuseTotals(hits=row[0], energy_j=row[1], co2e_g=row[2], duration_s=row[3])

        result: ReuseTotals = self._guard(op)
        return result

    def last_metrics(self, run_ids: Iterable[str]) -> dict[str, dict[str, float]]:
        """Each metric's last value per run: one indexed query per 500 runs reads only
        each key's last point."""
        ids = list(dict.fromkeys(run_ids))
        last: dict[str, dict[str, float]] = {}

        def op(chunk: list[str]) -> list[tuple[Any, ...]]:
            marks = ", ".join("?" for _ in chunk)
            return list(self._conn.execute(
                "SELECT run_id, key, value FROM metrics WHERE seq IN (SELECT max(seq) FROM "
                f"metrics WHERE run_id IN ({marks}) GROUP BY run_id, key) ORDER BY seq", chunk,
            ))  # fmt: skip

        for start in range(0, len(ids), 500):
            rows: list[tuple[Any, ...]] = self._guard(op, ids[start : start + 500])
            for run_id, key, value in rows:
                last.setdefault(run_id, {})[key] = value
        return last

    def record_groups(self, keys: Sequence[str]) -> list[RecordGroup]:
        """Runs grouped by host, components and record values, grouped by SQLite's JSON
        functions; runs it cannot read that way (a record that is not strict JSON, such as
        one holding NaN, or with facts annotated under one of ``keys``) are read whole."""
        keys = check_record_keys(keys)
        judged = bool({"liveness", "warnings"} & set(keys))  # shown differently by readers
        marks = ", ".join("?" for _ in keys)
        odd = (
            f"NOT json_valid(record) OR id IN (SELECT run_id FROM annotations WHERE key IN "
            f"({marks}))" + (" OR status = 'running'" if judged else "")
        )
        extracts = "".join(f", record -> '$.\"{k}\"'" for k in keys)
        grouped = (
            "SELECT host, (SELECT group_concat(component, char(31)) FROM components AS c "
            f"WHERE c.run_id = runs.id){extracts}, count(*), min(started_at), max(started_at) "
            f"FROM runs WHERE NOT ({odd}) GROUP BY "
            + ", ".join(str(i + 1) for i in range(len(keys) + 2))
        )

        def op() -> tuple[list[tuple[Any, ...]], list[RunRecord]]:
            rows = list(self._conn.execute(grouped, keys).fetchall())
            whole = self._decode_runs(
                self._conn.execute(f"SELECT * FROM runs WHERE {odd}", keys).fetchall()
            )
            return rows, whole

        rows, whole = self._guard(op)
        parsed: dict[str, Any] = {}
        groups: dict[tuple[Any, ...], list[Any]] = {}

        def add(host: str, comps: tuple[str, ...], values: dict[str, Any], n: int,
                first: float, last: float) -> None:  # fmt: skip
            key = (host, comps, json.dumps(values, sort_keys=True, default=str))
            entry = groups.get(key)
            if entry is None:
                groups[key] = [host, comps, values, n, first, last]
            else:
                entry[3] += n
                entry[4], entry[5] = min(entry[4], first), max(entry[5], last)

        for row in rows:
            comps = tuple(sorted(set(row[1].split("\x1f")))) if row[1] else ()
            values = {}
            for key, text in zip(keys, row[2 : 2 + len(keys)], strict=True):
                if text is not None and text not in parsed:
                    parsed[text] = json.loads(text)
                values[key] = None if text is None else copy.deepcopy(parsed[text])
            add(row[0], comps, values, *row[2 + len(keys) :])
        for run in whole:
            comps = tuple(sorted({c.component for c in run.components}))
            add(run.host, comps, {k: run.record.get(k) for k in keys}, 1, run.started_at,
                run.started_at)  # fmt: skip
        return sorted_groups(groups.values())

    def record_mentions(self, needles: Iterable[str]) -> set[str]:
        """Which needles occur in some run's stored record or annotated fact: the stored
        text is searched a batch at a time, once."""

        def op() -> set[str]:
            texts = (row[0] for row in self._conn.execute(
                "SELECT record FROM runs UNION ALL SELECT value FROM annotations"))  # fmt: skip
            return mentions_in(texts, needles)

        result: set[str] = self._guard(op)
        return result

    def reuse_by_user(self) -> dict[str | None, ReuseTotals]:
        """What cache hits avoided, per user who saved it."""

        def op() -> dict[str | None, ReuseTotals]:
            return {
                row[0]: ReuseTotals(hits=row[1], energy_j=row[2], co2e_g=row[3],
                                    duration_s=row[4])
                for row in self._conn.execute(
                    'SELECT "user", count(*), coalesce(sum(energy_avoided_j), 0), '
                    "coalesce(sum(co2e_avoided_g), 0), coalesce(sum(duration_avoided_s), 0) "
                    'FROM reuse GROUP BY "user"'
                )
            }  # fmt: skip

        result: dict[str | None, ReuseTotals] = self._guard(op)
        return result


    def get_run(self, ref: str) -> RunRecord:
        """The run whose id is ``ref`` or starts with it (at least 4 characters).

        Raises:
            RunNotFoundError: No run matches, or the prefix matches several runs.
        """
        def op() -> list[RunRecord]:
            if len(ref) < 4:
                rows = self._conn.execute("SELECT * FROM runs WHERE id = ?", (ref,)).fetchall()
            else:
                rows = self._conn.execute(
                    "SELECT * FROM runs WHERE id LIKE ? ESCAPE '\\' ORDER BY started_at LIMIT 5",
                    (_like_prefix(ref),),
                ).fetchall()
            return self._decode_runs(rows)

        runs: list[RunRecord] = self._guard(op)
        if not runs:
            msg = f"No run {ref!r} in the ledger at {self.path}. List runs with 'wattwise runs'."
            raise RunNotFoundError(msg)
        if len(runs) > 1:
            ids = ", ".join(r.id[:12] for r in runs)
            msg = f"Run prefix {ref!r} is ambiguous ({ids}); give more characters."
            raise RunNotFoundError(msg)
        return runs[0]

    def list_runs(
        self,
        *,
        status: str | None = None,
        study_id: str | None = None,
        top_level: bool = False,
        user: str | None = None,
        host: str | None = None,
        limit: int | None = None,
        offset: int = 0,
        newest_first: bool = False,
        job_id: str | None = None,
    ) -> list[RunRecord]:
        """Runs matching every filter, paged from the newest (see :class:`BaseRunStore`)."""
        where, args = _filters(study_id=study_id, top_level=top_level, user=user, host=host,
                               job_id=job_id)  # fmt: skip
        judged = status in (RunStatus.RUNNING.value, RunStatus.CRASHED.value)
        if status is not None:
            # A run the ledger says is running may be shown crashed (and only those).
            statuses = {status, RunStatus.RUNNING.value} if judged else {status}
            where.append(f"status IN ({', '.join('?' for _ in statuses)})")
            args.extend(sorted(statuses))
        sql = "SELECT * FROM runs"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY started_at DESC, id"
        start = max(0, int(offset))
        if not judged and (limit is not None or start):
            sql += " LIMIT ? OFFSET ?"
            args.extend([-1 if limit is None else max(0, int(limit)), start])

        def op() -> list[RunRecord]:
            return self._decode_runs(self._conn.execute(sql, args).fetchall())

        runs: list[RunRecord] = self._guard(op)
        if judged:
            runs = [r for r in runs if r.status.value == status]
            stop = None if limit is None else start + max(0, int(limit))
            runs = runs[start:stop]
        if not newest_first:
            runs.reverse()
        return runs

    def count_runs(
        self,
        *,
        status: str | None = None,
        study_id: str | None = None,
        top_level: bool = False,
        user: str | None = None,
        host: str | None = None,
        job_id: str | None = None,
    ) -> int:
        """How many runs :meth:`list_runs` would return with these filters."""
        filters: dict[str, Any] = {"study_id": study_id, "top_level": top_level, "user": user,
                                   "host": host, "job_id": job_id}  # fmt: skip
        if status in (RunStatus.RUNNING.value, RunStatus.CRASHED.value):
            judged = self._running(**filters)
            shown = sum(1 for r in judged if r.status.value == status)
            if status == RunStatus.RUNNING.value:
                return shown
        else:
            shown = 0
        where, args = _filters(**filters)
        if status is not None:
            where.append("status = ?")
            args.append(status)
        sql = "SELECT count(*) FROM runs"
        if where:
            sql += " WHERE " + " AND ".join(where)

        def op() -> int:
            return int(self._conn.execute(sql, args).fetchone()[0])

        stored: int = self._guard(op)
        return stored + shown

    def aggregate(
        self,
        group_by: str = "none",
        *,
        top_level: bool = True,
        study_id: str | None = None,
        user: str | None = None,
        host: str | None = None,
        job_id: str | None = None,
    ) -> list[AggregateRow]:
        """Sums per group, role and status, in SQL (running runs are judged one by one)."""
        check_group_by(group_by)
        filters: dict[str, Any] = {"study_id": study_id, "top_level": top_level, "user": user,
                                   "host": host, "job_id": job_id}  # fmt: skip
        where, args = _filters(**filters)
        where.append("status != ?")
        args.append(RunStatus.RUNNING.value)
        source = "runs LEFT JOIN json_each(runs.tags) AS t" if group_by == "tag" else "runs"
        sql = (
            f"SELECT {_GROUP_SQL[group_by]} AS g, {ROLE_SQL} AS r, status, count(*), "
            "coalesce(sum(duration_s), 0), coalesce(sum(energy_j), 0), "
            "coalesce(sum(energy_band_j), 0), coalesce(sum(co2e_g), 0), "
            "coalesce(sum(co2e_band_g), 0), min(started_at), max(started_at) "
            f"FROM {source} WHERE {' AND '.join(where)} GROUP BY g, r, status"
        )

        def op() -> list[tuple[Any, ...]]:
            return list(self._conn.execute(sql, args).fetchall())

        rows: list[tuple[Any, ...]] = self._guard(op)
        sums: dict[tuple[str | None, str, str], list[Any]] = {
            (g, r, st): [n, d, e, eb, c, cb, first, last]
            for g, r, st, n, d, e, eb, c, cb, first, last in rows
        }
        running = self._running(**filters)
        for run in running:
            for group in group_values(run, group_by):
                add_run(sums, (group, declared_role(run), run.status.value), run)
        return rows_from_sums(sums)

    def _running(self, **filters: Any) -> list[RunRecord]:
        """Runs the ledger says are running, with the status a reader sees."""
        where, args = _filters(**filters)
        where.append("status = ?")
        args.append(RunStatus.RUNNING.value)
        sql = f"SELECT * FROM runs WHERE {' AND '.join(where)}"

        def op() -> list[RunRecord]:
            return self._decode_runs(self._conn.execute(sql, args).fetchall())

        result: list[RunRecord] = self._guard(op)
        return result

    def iter_metrics(self, run_ids: Iterable[str] | None = None) -> Iterator[RunMetric]:
        """Metric points of many runs, by run then logging order, fetched in batches."""
        if run_ids is not None:
            for run_id in run_ids:
                for point in self.metrics(run_id):
                    yield (run_id, *point)
            return
        after: tuple[str, int] = ("", -1)
        while True:
            def op(key: tuple[str, int] = after) -> list[tuple[Any, ...]]:
                return list(self._conn.execute(
                    "SELECT run_id, seq, step, key, value, logged_at FROM metrics "
                    "WHERE (run_id, seq) > (?, ?) ORDER BY run_id, seq LIMIT ?",
                    (*key, _BATCH),
                ).fetchall())  # fmt: skip

            batch: list[tuple[Any, ...]] = self._guard(op)
            for run_id, _seq, step, key, value, logged_at in batch:
                yield (run_id, step, key, value, logged_at)
            if len(batch) < _BATCH:
                return
            after = (batch[-1][0], batch[-1][1])

    def metrics(self, run_id: str) -> list[Metric]:
        """Metric points of a run in logging order: ``(step, key, value, logged_at)``."""

        def op() -> list[Metric]:
            return [
                (r[0], r[1], r[2], r[3])
                for r in self._conn.execute(
                    "SELECT step, key, value, logged_at FROM metrics WHERE run_id = ? "
                    "ORDER BY seq",
                    (run_id,),
                )
            ]

        result: list[Metric] = self._guard(op)
        return result

    def samples(self, run_id: str) -> list[Sample]:
        """Power samples of a run: ``(t_s, component, power_w, energy_j)`` by time."""

        def op() -> list[Sample]:
            return [
                (r[0], r[1], r[2], r[3])
                for r in self._conn.execute(
                    "SELECT t_s, component, power_w, energy_j FROM samples WHERE run_id = ? "
                    "ORDER BY t_s, component",
                    (run_id,),
                )
            ]

        result: list[Sample] = self._guard(op)
        return result

    def _decode_runs(self, rows: list[tuple[Any, ...]], *, judge: bool = True) -> list[RunRecord]:
        """Rows as records; with ``judge``, running runs get their effective status."""
        runs = []
        names = [d[0] for d in self._conn.execute("SELECT * FROM runs LIMIT 0").description]
        # Each field of RunRecord in its order, by its column's place in a row (job_id is
        # read from the record: RunRecord.job_id); built positionally, parsed in one go.
        where = [names.index(f) if f != "components" else 0 for f in _FIELDS]
        at = [names.index(col) for col in ("tags", "params", "record")]
        loads = json.loads
        statuses = {s.value: s for s in RunStatus}
        for row in rows:
            values = [row[i] for i in where]
            tags, params, record = loads(f"[{row[at[0]]},{row[at[1]]},{row[at[2]]}]")
            values[_TAGS], values[_PARAMS], values[_RECORD] = tags, params, record
            values[_STATUS] = statuses[values[_STATUS]]
            values[_COMPONENTS] = []
            runs.append(RunRecord(*values))
        by_id = {r.id: r for r in runs}
        if by_id:
            marks = ", ".join("?" for _ in by_id)
            for row in self._conn.execute(
                "SELECT run_id, component, energy_j, machine_energy_j, band_j, method, meter, "
                f"source, info FROM components WHERE run_id IN ({marks}) ORDER BY component",
                list(by_id),
            ):
                by_id[row[0]].components.append(ComponentEnergy(
                    row[1], row[2], row[3], row[4], row[5], row[6], row[7],
                    {} if row[8] == "{}" else loads(row[8]),
                ))  # fmt: skip
            _merge_annotations(self._conn, by_id, marks)
        if judge:
            now = time.time()
            for run in runs:
                if run.status is RunStatus.RUNNING:
                    _judge(run, self._liveness(run, now))
        return runs


def _stamp(path: str | os.PathLike[str]) -> tuple[int, ...] | None:
    """A file's device, inode, size and modification time (None: no such file)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def _sets(cols: Iterable[str]) -> str:
    return ", ".join(f'"{c}" = ?' for c in cols)


def _filters(
    *, study_id: str | None, top_level: bool, user: str | None, host: str | None,
    job_id: str | None = None,
) -> tuple[list[str], list[Any]]:  # fmt: skip
    where: list[str] = []
    args: list[Any] = []
    if study_id == "":  # NO_STUDY
        where.append("study_id IS NULL")
        study_id = None
    for column, value in (("study_id", study_id), ('"user"', user), ("host", host),
                          ("job_id", job_id)):  # fmt: skip
        if value is not None:
            where.append(f"{column} = ?")
            args.append(value)
    if top_level:
        where.append("parent_id IS NULL")
    return where, args


def _judge(run: RunRecord, verdict: _liveness.Liveness) -> None:
    """Show a running run as the reader sees it, without writing anything."""
    if verdict.note:
        live = run.record.setdefault("liveness", {})
        if isinstance(live, dict):
            live["note"] = verdict.note
        warnings = run.record.setdefault("warnings", [])
        if isinstance(warnings, list):
            warnings.append(verdict.note)
    if not verdict.alive:
        run.status = RunStatus.CRASHED
        run.ended_at = run.heartbeat_at


def _memory_ledger(*, migrate: bool = True) -> sqlite3.Connection:
    """An empty ledger in memory (what a reader sees where there is no file)."""
    conn = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
    if migrate:
        _migrate(conn, 0)
    return conn


#: From this version on, the pending migrations only add nullable columns (and indexes), so
#: a reader sees the current schema through views instead of copying the ledger.
_ADDITIVE_FROM = 3
#: Every column of the tables that later migrations widened.
_WIDENED = {"runs": _RUN_COLUMNS, "reuse": ("seq", *_REUSE_NAMES)}


def _view_current(conn: sqlite3.Connection) -> bool:
    """Show an older ledger's runs and cache hits with the columns added since (``user``,
    ``role``, ``job_id``; the hits' ``user``: NULL) through temporary views that shadow
    the tables on this read-only connection; False if it cannot."""
    try:
        for table, wanted in _WIDENED.items():
            have = {row[1] for row in conn.execute(f"PRAGMA main.table_info({table})")}
            if set(wanted) <= have:
                continue
            columns = ", ".join(f'"{c}"' if c in have else f'NULL AS "{c}"' for c in wanted)
            conn.execute(f"CREATE TEMP VIEW {table} AS SELECT {columns} FROM main.{table}")
    except sqlite3.Error:
        return False
    return True


def _version(conn: sqlite3.Connection) -> int:
    """The ledger's version: the highest in ``schema_migrations``, else ``user_version``.

    Ledgers written before the table existed (versions 1 to 3) have only the pragma.
    """
    pragma: int = conn.execute("PRAGMA user_version").fetchone()[0]
    has_table = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (SCHEMA_TABLE,)
    ).fetchone()
    if has_table is None:
        return pragma
    row = conn.execute(f"SELECT max(version) FROM {SCHEMA_TABLE}").fetchone()
    return max(pragma, int(row[0] or 0))


def _migrate(conn: sqlite3.Connection, version: int) -> None:
    apply_migrations(conn, "sqlite", version)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


def _annotate(conn: sqlite3.Connection, run_id: str, key: str, value: Any) -> None:
    conn.execute(
        "INSERT INTO annotations (run_id, key, value, is_append, written_at) "
        "VALUES (?, ?, ?, 1, ?)",
        (run_id, key, json_text(value), time.time()),
    )


def _apply_spooled(conn: sqlite3.Connection, run_id: str, entry: dict[str, Any]) -> None:
    """One spooled write: fields (unless the ledger is newer), components, samples, metrics."""
    fields = entry.get("fields") or {}
    cols, values = job_sets(sorted(set(fields) & _UPDATABLE), fields)
    if cols:
        row = conn.execute("SELECT heartbeat_at FROM runs WHERE id = ?", (run_id,)).fetchone()
        beat = fields.get("heartbeat_at")
        if row is None or not isinstance(beat, (int, float)) or beat >= row[0]:
            conn.execute(f"UPDATE runs SET {_sets(cols)} WHERE id = ?", [*values, run_id])
            components = [ComponentEnergy(**c) for c in entry.get("components") or []]
            if components:
                _replace_components(conn, run_id, components)
    conn.executemany(
        "INSERT INTO samples (run_id, t_s, component, power_w, energy_j) VALUES (?, ?, ?, ?, ?)",
        [(run_id, *s) for s in entry.get("samples") or []],
    )
    conn.executemany(
        "INSERT INTO metrics (run_id, step, key, value, logged_at) VALUES (?, ?, ?, ?, ?)",
        [(run_id, *m) for m in entry.get("metrics") or []],
    )


def _merge_annotations(conn: sqlite3.Connection, by_id: dict[str, RunRecord], marks: str) -> None:
    """Merge facts written by other processes into the records (see ``annotate_run``)."""
    for run_id, key, value, is_append in conn.execute(
        f"SELECT run_id, key, value, is_append FROM annotations WHERE run_id IN ({marks}) "
        "ORDER BY seq",
        list(by_id),
    ):
        record = by_id[run_id].record
        if is_append:
            existing = record.get(key)
            if not isinstance(existing, list):
                existing = record[key] = []
            existing.append(json.loads(value))
        else:
            record[key] = json.loads(value)


def _like_prefix(ref: str) -> str:
    escaped = ref.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped + "%"


def _replace_components(
    conn: sqlite3.Connection, run_id: str, components: Sequence[ComponentEnergy]
) -> None:
    components = valid(list(components))
    conn.executemany(
        "INSERT OR REPLACE INTO components (run_id, component, energy_j, machine_energy_j, "
        "band_j, method, meter, source, info) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (
                run_id,
                c.component,
                c.energy_j,
                c.machine_energy_j,
                c.band_j,
                c.method,
                c.meter,
                c.source,
                json_text(c.info),
            )
            for c in components
        ],
    )


def _put_blob(conn: sqlite3.Connection, digest: str, content: bytes) -> None:
    """Store ``content`` under its sha256 unless a blob with that hash is there already."""
    conn.execute(
        "INSERT OR IGNORE INTO blobs (sha256, size_bytes, content) VALUES (?, ?, ?)",
        (digest, len(content), content),
    )

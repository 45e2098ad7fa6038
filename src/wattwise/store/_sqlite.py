"""The ledger on SQLite (WAL), safe for many processes and threads at once.

Contract: one ``SQLiteRunStore`` instance may be shared by the threads of a process (a
lock serialises its connection); any number of processes may open the same file. Every
write is one ``BEGIN IMMEDIATE`` transaction, so concurrent writers queue on SQLite's lock
(``busy_timeout``) and nothing is lost.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import socket
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from wattwise.exceptions import (
    RunNotFoundError,
    SchemaVersionError,
    StoreCorruptError,
    StoreError,
)
from wattwise.store._model import ComponentEnergy, RunRecord, RunStatus
from wattwise.store._reuse import ReuseEvent, ReuseTotals
from wattwise.store._schema import MIGRATIONS, SCHEMA_VERSION

#: A running run whose heartbeat is older than this is marked crashed by the next reader.
STALE_AFTER_S = 30.0
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
)
_JSON_COLUMNS = frozenset({"tags", "params", "record"})
_UPDATABLE = frozenset(_RUN_COLUMNS) - {"id", "started_at", "host", "pid"}

Sample = tuple[float, str, float, float]  # (t_s, component, power_w, cumulative energy_j)
Metric = tuple[int | None, str, float, float]  # (step, key, value, logged_at)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class SQLiteRunStore:
    """The run ledger in one SQLite file.

    Args:
        path: The database file; its folder is created if missing.
        stale_after_s: Heartbeat age after which a running run counts as crashed.
    """

    def __init__(self, path: str | os.PathLike[str], *, stale_after_s: float = STALE_AFTER_S):
        self.path = Path(path)
        self.stale_after_s = stale_after_s
        self._lock = threading.Lock()
        self._host = socket.gethostname()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(
                self.path, timeout=_BUSY_TIMEOUT_MS / 1000, isolation_level=None,
                check_same_thread=False,
            )
        except (OSError, sqlite3.Error) as err:
            msg = (
                f"Cannot open the ledger at {self.path}: {err}. Check that the folder is "
                "writable, or point WATTWISE_STORE at another file."
            )
            raise StoreError(msg) from err
        self._guard(self._init_schema)

    # -- plumbing -------------------------------------------------------------

    def _guard(self, fn: Any, *args: Any) -> Any:
        try:
            with self._lock:
                return fn(*args)
        except sqlite3.DatabaseError as err:
            text = str(err)
            if "not a database" in text or "malformed" in text or "no such table" in text:
                msg = (
                    f"The ledger at {self.path} is damaged or not a wattwise ledger ({text}). "
                    f"Move it aside (mv {self.path} {self.path}.bad) to start a new one."
                )
                raise StoreCorruptError(msg) from err
            if "readonly" in text or "unable to open" in text:
                msg = (
                    f"Cannot write the ledger at {self.path} ({text}). Check the file's "
                    "permissions, or point WATTWISE_STORE at a writable file."
                )
                raise StoreError(msg) from err
            msg = f"Ledger error at {self.path}: {text}."
            raise StoreError(msg) from err

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def _init_schema(self) -> None:
        conn = self._conn
        conn.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
        # Switching to WAL needs an exclusive lock and SQLite answers "database is locked"
        # at once, without its busy handler, when another process is creating the same
        # ledger: retry for as long as the busy timeout allows.
        deadline = time.monotonic() + _BUSY_TIMEOUT_MS / 1000
        while conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
            try:
                conn.execute("PRAGMA journal_mode = WAL")
            except sqlite3.OperationalError as err:
                if "locked" not in str(err) or time.monotonic() > deadline:
                    raise
                time.sleep(0.01)
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA foreign_keys = ON")
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version == SCHEMA_VERSION:
            return
        with self._write():
            version = conn.execute("PRAGMA user_version").fetchone()[0]
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
            for statements in MIGRATIONS[version:]:
                for statement in statements:
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def close(self) -> None:
        """Close the connection. The store cannot be used afterwards."""
        with self._lock:
            self._conn.close()

    # -- writes ---------------------------------------------------------------

    def insert_run(self, run: RunRecord) -> None:
        """Add a new run (status running) with its components, if any."""
        values = [_encode(col, getattr(run, col)) for col in _RUN_COLUMNS]

        def op() -> None:
            with self._write() as conn:
                conn.execute(
                    f"INSERT INTO runs ({', '.join(_RUN_COLUMNS)}) "
                    f"VALUES ({', '.join('?' for _ in _RUN_COLUMNS)})",
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
        cols = sorted(fields)
        values = [_encode(col, fields[col]) for col in cols]

        def op() -> None:
            with self._write() as conn:
                if cols:
                    sets = ", ".join(f"{col} = ?" for col in cols)
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

    def reap(self, *, now: float | None = None) -> list[str]:
        """Mark crashed every running run that stopped beating or whose process is gone.

        A run's process on this host that no longer exists is crashed at once; elsewhere a
        heartbeat older than ``stale_after_s`` decides. Energy stays as last flushed.

        Returns:
            Ids of the runs marked crashed.
        """
        now = time.time() if now is None else now

        def op() -> list[str]:
            rows = self._conn.execute(
                "SELECT id, host, pid, heartbeat_at FROM runs WHERE status = ?",
                (RunStatus.RUNNING.value,),
            ).fetchall()
            dead = [
                run_id
                for run_id, host, pid, beat in rows
                if now - beat > self.stale_after_s
                or (host == self._host and pid != os.getpid() and not _pid_alive(pid))
            ]
            if dead:
                with self._write() as conn:
                    for run_id in dead:
                        conn.execute(
                            "UPDATE runs SET status = ?, ended_at = heartbeat_at "
                            "WHERE id = ? AND status = ?",
                            (RunStatus.CRASHED.value, run_id, RunStatus.RUNNING.value),
                        )
            return dead

        result: list[str] = self._guard(op)
        return result

    def put_artifact(self, run_id: str, name: str, content: bytes) -> str:
        """Store a run's artifact (the git diff), replacing one of the same name.

        Content is kept once per sha256 (a blob) and shared by every artifact that has
        it, so the same diff recorded by many runs costs its size once.

        Returns:
            The content's sha256 (hex).
        """
        digest = hashlib.sha256(content).hexdigest()

        def op() -> None:
            with self._write() as conn:
                _put_blob(conn, digest, content)
                conn.execute(
                    "DELETE FROM artifacts WHERE run_id = ? AND name = ?", (run_id, name)
                )  # the trigger frees the old blob when no other artifact uses it
                conn.execute(
                    "INSERT INTO artifacts (run_id, name, sha256, size_bytes, created_at) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (run_id, name, digest, len(content), time.time()),
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
        text = json.dumps(value, sort_keys=True, default=str)

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

        self._guard(op)

    def add_reuse(self, event: ReuseEvent) -> None:
        """Record a cache hit and the energy it avoided."""
        fields = dataclasses.fields(ReuseEvent)
        names = ", ".join(f.name for f in fields)
        values = [getattr(event, f.name) for f in fields]

        def op() -> None:
            with self._write() as conn:
                conn.execute(
                    f"INSERT INTO reuse ({names}) VALUES ({', '.join('?' for _ in fields)})",
                    values,
                )

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
        if hashlib.sha256(content).hexdigest() != digest:
            msg = (
                f"Artifact {name!r} of run {run_id[:8]!r} in {self.path} does not match its "
                "sha256; the ledger is damaged. Restore it from a backup."
            )
            raise StoreCorruptError(msg)
        return content

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
        names = [f.name for f in dataclasses.fields(ReuseEvent)]
        sql = f"SELECT {', '.join(names)} FROM reuse"
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


    def get_run(self, ref: str) -> RunRecord:
        """The run whose id is ``ref`` or starts with it (at least 4 characters).

        Raises:
            RunNotFoundError: No run matches, or the prefix matches several runs.
        """
        self.reap()

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
        limit: int | None = None,
    ) -> list[RunRecord]:
        """Runs, oldest first.

        Args:
            status: Keep only runs with this status.
            study_id: Keep only runs of this study.
            top_level: Drop runs nested inside another run (their energy is in the parent).
            limit: Keep the newest ``limit`` runs.
        """
        self.reap()
        where, args = [], []
        if status is not None:
            where.append("status = ?")
            args.append(status)
        if study_id is not None:
            where.append("study_id = ?")
            args.append(study_id)
        if top_level:
            where.append("parent_id IS NULL")
        sql = "SELECT * FROM runs"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY started_at DESC, id"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"

        def op() -> list[RunRecord]:
            return self._decode_runs(self._conn.execute(sql, args).fetchall())

        runs: list[RunRecord] = self._guard(op)
        runs.reverse()
        return runs

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

    def _decode_runs(self, rows: list[tuple[Any, ...]]) -> list[RunRecord]:
        runs = []
        names = [d[0] for d in self._conn.execute("SELECT * FROM runs LIMIT 0").description]
        for row in rows:
            data = dict(zip(names, row, strict=True))
            for col in _JSON_COLUMNS:
                data[col] = json.loads(data[col])
            data["status"] = RunStatus(data["status"])
            runs.append(RunRecord(**data))
        by_id = {r.id: r for r in runs}
        if by_id:
            marks = ", ".join("?" for _ in by_id)
            for row in self._conn.execute(
                "SELECT run_id, component, energy_j, machine_energy_j, band_j, method, meter, "
                f"source, info FROM components WHERE run_id IN ({marks}) ORDER BY component",
                list(by_id),
            ):
                by_id[row[0]].components.append(
                    ComponentEnergy(
                        component=row[1], energy_j=row[2], machine_energy_j=row[3],
                        band_j=row[4], method=row[5], meter=row[6], source=row[7],
                        info=json.loads(row[8]),
                    )
                )
            _merge_annotations(self._conn, by_id, marks)
        return runs


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


def _encode(col: str, value: Any) -> Any:
    if col in _JSON_COLUMNS:
        return json.dumps(value, sort_keys=True, default=str)
    if isinstance(value, RunStatus):
        return value.value
    return value


def _like_prefix(ref: str) -> str:
    escaped = ref.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped + "%"


def _replace_components(
    conn: sqlite3.Connection, run_id: str, components: Sequence[ComponentEnergy]
) -> None:
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
                json.dumps(c.info, sort_keys=True, default=str),
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

"""The ledger on a PostgreSQL server, through psycopg 3: one ledger for a team.

Loaded only when a ``postgresql://`` URL is opened (``pip install 'wattwise[postgres]'``):
``import wattwise`` and the SQLite ledger never import psycopg.

Contract (:class:`~wattwise.store._base.BaseRunStore`), as PostgreSQL keeps it:

* **Atomicity**: every write method is one transaction (``READ COMMITTED``); a failure rolls
  it back whole. Transient conflicts (serialization failure, deadlock) are retried.
* **Concurrency**: one store object is shared by a process's threads (a lock serialises its
  one connection); any number of processes on any number of hosts write at once. Run rows
  are locked by ``UPDATE``; metric, sample and annotation rows only ever get inserted (with
  identity keys), so concurrent writers never lose one another's rows. The two
  read-then-write steps take a transaction-scoped advisory lock: schema migration (one
  lock for the ledger) and spool merging (one per run), so a file is merged exactly once.
* **Readers never write**: opening connects and writes nothing; reads of a database without
  the ledger's tables read as an empty ledger; ``readonly=True`` also makes the server
  refuse writes (``default_transaction_read_only``), so it works with a ``SELECT``-only role.
  The first write creates the tables (the migration list of :mod:`wattwise.store._schema`,
  recorded in ``schema_migrations``), under the advisory lock.
* **Crashes**: :meth:`PostgresRunStore.reap` is the only writer of ``crashed``;
  ``UPDATE ... WHERE status = 'running'`` makes each run reaped by exactly one reaper.
* **Faults**: a server that cannot be reached is a one-line :class:`StoreError` (the run's
  writer spools, issue 8, and the spool merges into the server later); the connection is
  dropped and opened again by the next call.
* **Secrets**: the password in a URL is used to connect and never kept elsewhere:
  :attr:`PostgresRunStore.url`, error messages and everything written to the ledger carry
  the URL without it. Children and workers receive that URL and authenticate through
  libpq's own means (``~/.pgpass``, ``PGPASSFILE``, ``PGPASSWORD``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import socket
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from wattwise.exceptions import (
    ConfigError,
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
    RunMetric,
    Sample,
    check_group_by,
    local_path_for,
    mentions_in,
    verified_artifact,
)
from wattwise.store._model import ComponentEnergy, RunRecord, RunStatus, job_id_of, login_name
from wattwise.store._records import (
    JSON_COLUMNS,
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
    import psycopg

    from wattwise.store._spool import SpoolFile

#: Margin added to a remote run's stale window (3 of its own flush intervals + this).
STALE_AFTER_S = 30.0
_CONNECT_TIMEOUT_S = 10
_NET_DEFAULTS: dict[str, Any] = {
    "connect_timeout": _CONNECT_TIMEOUT_S, "application_name": "wattwise", "keepalives": 1,
    "keepalives_idle": 10, "keepalives_interval": 5, "keepalives_count": 3,
    "tcp_user_timeout": 30_000,
}  # fmt: skip
_RETRIES = 5
_BATCH = 10_000
#: Advisory-lock keys: (namespace, key) pairs so they never meet another application's.
_LOCK_NS = 0x77617474  # "watt"
_LOCK_SCHEMA = 1
#: Columns no writer sets directly (``job_id`` follows the record: see ``_records.job_sets``).
_FIXED = frozenset({"id", "started_at", "host", "pid", "user", "job_id"})
_RECORD_FIELDS = tuple(f.name for f in dataclasses.fields(RunRecord) if f.name != "components")
_REUSE_NAMES = tuple(f.name for f in dataclasses.fields(ReuseEvent))
_SECRET_QUERY = frozenset({"password", "passfile", "sslpassword"})

T = TypeVar("T")


def _q(column: str) -> str:
    """A quoted identifier (``user`` is a reserved word in PostgreSQL)."""
    return '"' + column.replace('"', '""') + '"'


def public_url(url: str) -> str:
    """``url`` without its password (in the user-info or as a ``password=`` parameter)."""
    parts = urllib.parse.urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, hosts = netloc.rpartition("@")
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}@{hosts}" if user else hosts
    query = urllib.parse.urlencode(
        [(k, v) for k, v in urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
         if k.lower() not in _SECRET_QUERY],
        safe="/",
    )  # fmt: skip
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def _secrets_of(url: str) -> list[str]:
    """The password(s) a URL holds, raw and quoted, to scrub from any message."""
    parts = urllib.parse.urlsplit(url)
    found = []
    if parts.password:
        found += [parts.password, urllib.parse.unquote(parts.password)]
    for key, value in urllib.parse.parse_qsl(parts.query, keep_blank_values=True):
        if key.lower() in _SECRET_QUERY and value:
            found += [value, urllib.parse.quote(value, safe="")]
    return sorted({s for s in found if s}, key=len, reverse=True)


class PostgresRunStore(BaseRunStore):
    """The run ledger in a PostgreSQL database (see the module docstring for the contract).

    Args:
        url: ``postgresql://[user[:password]@][host][:port]/database[?param=value]``
            (libpq's URI form: ``?host=/run/postgresql`` for a Unix socket, ``sslmode``, ...).
        start: Where the project is (its ``.wattwise/`` holds this ledger's spool).
        readonly: Refuse every write (and have the server refuse them too).
        defer: Connect on first use instead of now.
        busy_timeout_s: How long a write waits for a row or table lock (``lock_timeout``).
        stale_after_s: Margin added to a remote run's stale window.
    """

    def __init__(
        self, url: str, *, start: str | os.PathLike[str] | None = None, readonly: bool = False,
        defer: bool = False, busy_timeout_s: float = 60.0, stale_after_s: float = STALE_AFTER_S,
        path: Path | None = None,
    ) -> None:  # fmt: skip
        scheme = url.split("://", 1)[0].lower() if "://" in url else ""
        if scheme not in ("postgresql", "postgres"):
            msg = f"Not a PostgreSQL URL: {public_url(url)!r}. Use postgresql://host/database."
            raise ConfigError(msg)
        try:
            import psycopg  # noqa: F401
        except ImportError as err:
            msg = (
                f"The ledger {public_url(url)} is on PostgreSQL, which needs psycopg 3 "
                f"({err}). Install it: pip install 'wattwise[postgres]'."
            )
            raise ConfigError(msg) from err
        self._conninfo = url
        self._secrets = _secrets_of(url)
        self._public = public_url(url)
        if not urllib.parse.urlsplit(url).path.strip("/"):
            msg = (
                f"The store URL {self._public!r} names no database. Add it: "
                "postgresql://host/database."
            )
            raise ConfigError(msg)
        digest = hashlib.sha256(self._public.encode()).hexdigest()[:12]
        # The spool and its header key: a file name under .wattwise/ for this server ledger
        # (never created), distinct from the SQLite ledger's and from other servers'.
        self.path = path or local_path_for(start).with_name(f"postgresql-{digest}.ledger")
        self.readonly = readonly
        self.stale_after_s = stale_after_s
        self._busy_timeout_s = float(busy_timeout_s)
        self._lock = threading.RLock()
        self._host = socket.gethostname()
        self._conn: psycopg.Connection[Any] | None = None
        self._version: int | None = None  # schema version once known to be current
        self._columns: dict[str, frozenset[str]] = {}
        self._writable = False
        if not defer:
            self._guard(self._connection)

    # -- identity and lifecycle -----------------------------------------------------

    @property
    def url(self) -> str:
        """The URL without its password."""
        return self._public

    def __repr__(self) -> str:
        return f"PostgresRunStore({self._public!r})"

    def child_environment(self) -> dict[str, str]:
        """``PGPASSWORD`` when the URL this store was opened with holds a password (which
        :attr:`url` leaves out) and this process's environment sets none: libpq reads it in
        the child, so a ``wattwise run`` child or a worker authenticates as this store did.
        """
        if os.environ.get("PGPASSWORD"):
            return {}
        parts = urllib.parse.urlsplit(self._conninfo)
        password = urllib.parse.unquote(parts.password) if parts.password else ""
        for key, value in urllib.parse.parse_qsl(parts.query, keep_blank_values=True):
            if key.lower() == "password" and value:
                password = value  # libpq: a parameter given in the query wins
        return {"PGPASSWORD": password} if password else {}

    @property
    def writable(self) -> bool:
        """True once this store has written (its schema is current and writable)."""
        return self._writable

    @property
    def busy_timeout_s(self) -> float:
        """Seconds a write waits for another writer's lock before failing."""
        return self._busy_timeout_s

    @busy_timeout_s.setter
    def busy_timeout_s(self, seconds: float) -> None:
        with self._lock:
            self._busy_timeout_s = float(seconds)
            if self._conn is not None and not self._conn.closed:
                with contextlib.suppress(Exception):
                    self._set_lock_timeout(self._conn)

    def reopen(self) -> PostgresRunStore:
        """A new store on the same ledger and settings that connects on first use."""
        return PostgresRunStore(
            self._conninfo, readonly=self.readonly, defer=True,
            busy_timeout_s=self._busy_timeout_s, stale_after_s=self.stale_after_s,
            path=self.path,
        )  # fmt: skip

    def reset(self) -> None:
        """Drop the connection; the next use connects again."""
        with self._lock:
            self._drop()
            self._writable = False

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._drop()

    def _drop(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
        self._conn = None
        self._version = None
        self._columns = {}

    # -- plumbing -------------------------------------------------------------------

    def _scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return " ".join(text.split())

    def _set_lock_timeout(self, conn: psycopg.Connection[Any]) -> None:
        conn.execute(f"SET lock_timeout = {int(self._busy_timeout_s * 1000)}")

    def _connection(self) -> psycopg.Connection[Any]:
        if self._conn is not None and not self._conn.closed and not self._conn.broken:
            return self._conn
        import psycopg

        self._drop()
        given = {k.lower() for k, _ in urllib.parse.parse_qsl(
            urllib.parse.urlsplit(self._conninfo).query)}  # fmt: skip
        # A server that vanishes mid-write (network gone) must not hang the run's writer for
        # ever: TCP keepalives and a send timeout end the wait (the records then spool).
        # Settings given in the URL win.
        options = {k: v for k, v in _NET_DEFAULTS.items() if k not in given}
        conn = psycopg.connect(self._conninfo, autocommit=True, **options)
        try:
            if self.readonly:
                conn.execute("SET default_transaction_read_only = on")
            self._set_lock_timeout(conn)
        except BaseException:
            conn.close()
            raise
        self._conn = conn
        return conn

    def _guard(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` under the lock, retrying transient conflicts; errors become one line."""
        import psycopg
        from psycopg import errors

        for attempt in range(_RETRIES):
            try:
                with self._lock:
                    return fn()
            except (errors.SerializationFailure, errors.DeadlockDetected):
                if attempt == _RETRIES - 1:
                    raise self._translate_last() from None
                time.sleep(0.01 * 2**attempt)
            except (StoreError, ConfigError):
                raise
            except psycopg.Error as err:
                raise self._translate(err) from None
            except UnicodeError as err:  # writes make text valid first: a read's argument
                msg = (
                    f"Cannot use a text that is not valid Unicode with the ledger "
                    f"{self._public} ({err}): it holds UTF-8 text only. Pass the value as "
                    "valid text."
                )
                raise StoreError(msg) from None
        raise self._translate_last()  # pragma: no cover (the loop always returns or raises)

    def _translate_last(self) -> StoreError:
        msg = (
            f"The ledger {self._public} kept conflicting with other writers after {_RETRIES} "
            "tries. Retry later."
        )
        return StoreError(msg)

    def _translate(self, err: Any) -> StoreError:
        from psycopg import errors

        text = self._scrub(str(err).strip() or type(err).__name__)
        with self._lock:
            if self._conn is not None and (self._conn.closed or self._conn.broken):
                self._drop()
        if isinstance(err, errors.ReadOnlySqlTransaction) or (
            self.readonly and isinstance(err, errors.InsufficientPrivilege)
        ):
            msg = f"The ledger {self._public} was opened read-only ({text}); open it for writing."
            return StoreError(msg)
        if isinstance(err, errors.InsufficientPrivilege):
            msg = (
                f"Cannot use the ledger {self._public}: {text}. Ask its owner to grant this "
                "role access: USAGE on the schema and its sequences, SELECT, INSERT, UPDATE, "
                "DELETE on its tables (SELECT only to read); the documentation's how-to "
                "'One ledger for a team' lists the GRANT statements."
            )
            return StoreError(msg)
        if isinstance(err, errors.LockNotAvailable | errors.QueryCanceled):
            msg = (
                f"The ledger {self._public} is locked by another writer for longer than the "
                f"busy timeout ({self._busy_timeout_s:g} s) ({text}). Retry later."
            )
            return StoreError(msg)
        if isinstance(err, errors.UndefinedTable | errors.UndefinedColumn):
            msg = (
                f"The database {self._public} is damaged or not a wattwise ledger ({text}). "
                "Point --store (or WATTWISE_STORE) at another database."
            )
            return StoreCorruptError(msg)
        if isinstance(err, errors.DiskFull):
            msg = f"Cannot write the ledger {self._public}: the server's disk is full ({text})."
            return StoreError(msg)
        if isinstance(err, errors.OperationalError):
            msg = (
                f"Cannot reach the ledger {self._public}: {text}. Check that the server runs "
                "and the URL, user and password (~/.pgpass) are right."
            )
            return StoreError(msg)
        return StoreError(f"Ledger error at {self._public}: {text}.")

    def _schema(self, conn: psycopg.Connection[Any]) -> int:
        """The ledger's schema version (0: no tables yet); refuses a foreign or newer one."""
        if self._version is not None:
            return self._version
        found = conn.execute(
            "SELECT to_regclass(%s) IS NOT NULL, to_regclass('runs') IS NOT NULL",
            (SCHEMA_TABLE,),
        ).fetchone()
        assert found is not None
        has_table, has_runs = found
        version = 0
        if has_table:
            row = conn.execute(f"SELECT coalesce(max(version), 0) FROM {SCHEMA_TABLE}").fetchone()
            version = int(row[0]) if row else 0
        elif has_runs:
            msg = (
                f"The database {self._public} has a 'runs' table but is not a wattwise ledger "
                "(no schema_migrations). Use another database (or schema: "
                "?options=-csearch_path%3Dwattwise)."
            )
            raise StoreCorruptError(msg)
        if version > SCHEMA_VERSION:
            msg = (
                f"The ledger {self._public} has schema version {version}, newer than this "
                f"wattwise understands ({SCHEMA_VERSION}). Upgrade wattwise: "
                "pip install -U wattwise."
            )
            raise SchemaVersionError(msg)
        if version == SCHEMA_VERSION:
            self._version = version
        return version

    def _run_columns(
        self, conn: psycopg.Connection[Any], table: str = "runs"
    ) -> frozenset[str]:
        """The columns the ledger's ``table`` has (fewer on an older ledger).

        Kept only once the ledger's schema is known to be current (:meth:`_schema`): an older
        ledger may be migrated by another process at any time, so its columns are read again
        by each call (one catalog query, about 0.5 ms on a local socket) until this store
        sees the new version, and then the columns it adds (``user``, ``job_id``) are used.
        """
        cached = self._columns.get(table)
        if cached is not None:
            return cached
        rows = conn.execute(
            "SELECT attname FROM pg_attribute WHERE attrelid = to_regclass(%s) "
            "AND attnum > 0 AND NOT attisdropped", (table,),
        ).fetchall()  # fmt: skip
        columns = frozenset(r[0] for r in rows)
        if self._version == SCHEMA_VERSION:
            self._columns[table] = columns
        return columns

    def _reader(self) -> psycopg.Connection[Any] | None:
        """The connection for a read, or None when the ledger has no tables yet (empty)."""
        conn = self._connection()
        return conn if self._schema(conn) else None

    def _ensure_schema(self, conn: psycopg.Connection[Any]) -> None:
        """Create or migrate the ledger's tables (a write, under the schema lock)."""
        if self._schema(conn) == SCHEMA_VERSION:
            return
        # A session lock, then a new transaction: its start makes the server drop what its
        # catalog cache remembers, so tables another writer created meanwhile are seen.
        conn.execute("SELECT pg_advisory_lock(%s, %s)", (_LOCK_NS, _LOCK_SCHEMA))
        try:
            with conn.transaction():
                self._version = None
                current = self._schema(conn)
                if current < SCHEMA_VERSION:
                    apply_migrations(conn, "postgresql", current, placeholder="%s")
        finally:
            if not conn.closed and not conn.broken:
                conn.execute("SELECT pg_advisory_unlock(%s, %s)", (_LOCK_NS, _LOCK_SCHEMA))
        self._version = SCHEMA_VERSION
        self._columns = {}

    @contextlib.contextmanager
    def _write(self) -> Iterator[psycopg.Connection[Any]]:
        """One write transaction on a current schema."""
        self._refuse_if_readonly()
        conn = self._connection()
        self._ensure_schema(conn)
        with conn.transaction():
            yield conn
        self._writable = True

    def _refuse_if_readonly(self) -> None:
        if self.readonly:
            msg = (
                f"The ledger {self._public} was opened read-only and this step writes. Open "
                "it with get_store(url) (readonly=False) to write."
            )
            raise StoreError(msg)

    def _cols(self, conn: psycopg.Connection[Any]) -> list[str]:
        """The run columns a writer fills (``job_id`` from the record)."""
        have = self._run_columns(conn)
        return [c for c in (*_RECORD_FIELDS, "job_id") if c in have]

    def _insert_run_sql(
        self, conn: psycopg.Connection[Any], *, ignore: bool
    ) -> tuple[str, list[str]]:
        cols = self._cols(conn)
        sql = (
            f"INSERT INTO runs ({', '.join(_q(c) for c in cols)}) "
            f"VALUES ({', '.join('%s' for _ in cols)})"
        )
        if ignore:
            sql += " ON CONFLICT (id) DO NOTHING"
        return sql, cols

    # -- writes ---------------------------------------------------------------------

    def insert_run(self, run: RunRecord) -> None:
        """Add a new run (status running) with its components; a missing ``user`` is this
        process's login name (set on ``run`` too)."""
        if run.user is None:
            run.user = login_name()

        def op() -> None:
            from psycopg import errors

            with self._write() as conn:
                sql, cols = self._insert_run_sql(conn, ignore=False)
                try:
                    conn.execute(sql, row_values(run, cols))
                except errors.UniqueViolation as err:
                    msg = f"Run {run.id!r} is already in the ledger {self._public}."
                    raise StoreError(msg) from err
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
        """Write a run's latest state in one transaction (see the base class)."""
        updatable = set(_RECORD_FIELDS) - _FIXED
        unknown = set(fields) - updatable
        if unknown:
            msg = f"Cannot update run columns {sorted(unknown)}; allowed: {sorted(updatable)}."
            raise StoreError(msg)
        cols, values = job_sets(sorted(fields), fields)
        sample_rows = [(run_id, *s) for s in samples]
        metric_rows = [(run_id, *m) for m in metrics]

        def op() -> None:
            with self._write() as conn:
                if cols:
                    sets = ", ".join(f"{_q(col)} = %s" for col in cols)
                    cur = conn.execute(f"UPDATE runs SET {sets} WHERE id = %s", [*values, run_id])
                    if cur.rowcount == 0:
                        msg = f"Run {run_id!r} is not in the ledger {self._public}."
                        raise RunNotFoundError(msg)
                if components:
                    _replace_components(conn, run_id, components)
                _add_points(conn, sample_rows, metric_rows)

        self._guard(op)

    def resync_run(
        self, run: RunRecord, fields: dict[str, Any], *, components: Sequence[ComponentEnergy],
        metrics: Sequence[Metric],
    ) -> None:  # fmt: skip
        """Make the ledger hold a run's whole state again (see the base class)."""

        def op() -> None:
            with self._write() as conn:
                sql, cols = self._insert_run_sql(conn, ignore=True)
                conn.execute(sql, row_values(run, cols))
                sets, values = job_sets(sorted(set(fields) & (set(cols) - _FIXED)), fields)
                if sets:
                    conn.execute(
                        f"UPDATE runs SET {', '.join(f'{_q(c)} = %s' for c in sets)} "
                        "WHERE id = %s",
                        [*values, run.id],
                    )
                _replace_components(conn, run.id, components)
                row = conn.execute(
                    "SELECT count(*) FROM metrics WHERE run_id = %s", (run.id,)
                ).fetchone()
                if row is not None and row[0] < len(metrics):
                    conn.execute("DELETE FROM metrics WHERE run_id = %s", (run.id,))
                    _add_points(conn, [], [(run.id, *m) for m in metrics])

        self._guard(op)

    def annotate_run(self, run_id: str, key: str, value: Any, *, append: bool = False) -> None:
        """Attach a fact to a run's record from another process (see the base class)."""
        key, text = valid_text(key), json_text(value)
        job = job_id_of({key: valid(value)}) if not append else None

        def op() -> None:
            with self._write() as conn:
                if conn.execute("SELECT 1 FROM runs WHERE id = %s", (run_id,)).fetchone() is None:
                    msg = f"Run {run_id!r} is not in the ledger {self._public}."
                    raise RunNotFoundError(msg)
                conn.execute(
                    "INSERT INTO annotations (run_id, key, value, is_append, written_at) "
                    "VALUES (%s, %s, %s, %s, %s)",
                    (run_id, key, text, int(append), time.time()),
                )
                if job is not None:  # the record's job, set from another process
                    conn.execute("UPDATE runs SET job_id = %s WHERE id = %s", (job, run_id))

        self._guard(op)

    def put_artifact(
        self, run_id: str, name: str, content: bytes, *, created_at: float | None = None
    ) -> str:
        """Store a run's artifact; content kept once per sha256 (see the base class)."""
        digest = hashlib.sha256(content).hexdigest()
        when = time.time() if created_at is None else created_at
        name = valid_text(name)

        def op() -> None:
            with self._write() as conn:
                # The blob may be released by a concurrent delete of its last artifact:
                # both take this lock, so the insert below always finds it.
                conn.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))",
                             (_LOCK_NS, "blob:" + digest))  # fmt: skip
                conn.execute(
                    "INSERT INTO blobs (sha256, size_bytes, content) VALUES (%s, %s, %s) "
                    "ON CONFLICT (sha256) DO NOTHING",
                    (digest, len(content), content),
                )
                old = conn.execute(
                    "SELECT sha256 FROM artifacts WHERE run_id = %s AND name = %s",
                    (run_id, name),
                ).fetchone()
                if old is not None and old[0] != digest:
                    conn.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))",
                                 (_LOCK_NS, "blob:" + old[0]))  # fmt: skip
                conn.execute(
                    "DELETE FROM artifacts WHERE run_id = %s AND name = %s", (run_id, name)
                )  # the trigger frees the old blob when no other artifact uses it
                conn.execute(
                    "INSERT INTO artifacts (run_id, name, sha256, size_bytes, created_at) "
                    "VALUES (%s, %s, %s, %s, %s)",
                    (run_id, name, digest, len(content), when),
                )

        self._guard(op)
        return digest

    def add_reuse(self, event: ReuseEvent) -> None:
        """Record a cache hit and the energy it avoided; a missing ``user`` is the
        consuming run's."""
        names = ", ".join(_q(name) for name in _REUSE_NAMES)
        marks = ", ".join("%s" for name in _REUSE_NAMES if name != "user")
        values = [getattr(valid(event), name) for name in _REUSE_NAMES]  # user last

        def op() -> None:
            with self._write() as conn:
                conn.execute(
                    f"INSERT INTO reuse ({names}) VALUES ({marks}, "
                    'coalesce(%s, (SELECT "user" FROM runs WHERE id = %s)))',
                    [*values, event.consumer_run_id],
                )

        self._guard(op)

    def merge_spooled(self, spooled: SpoolFile) -> int | None:
        """Merge one spool file in one transaction; idempotent (see the base class)."""
        run_id = spooled.run_id
        header = spooled.header

        def op() -> int | None:
            with self._write() as conn:
                # One merger per run at a time: the check below and the merge are atomic.
                conn.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))",
                             (_LOCK_NS, "spool:" + run_id))  # fmt: skip
                done = conn.execute(
                    "SELECT 1 FROM annotations WHERE run_id = %s AND key = 'spooled' "
                    "AND value LIKE %s", (run_id, f'%"{spooled.file_id}"%'),
                ).fetchone()  # fmt: skip
                if done is not None:
                    return 0
                run = header.get("run")
                if run is not None:
                    sql, cols = self._insert_run_sql(conn, ignore=True)
                    conn.execute(sql, row_values(run, cols))
                if conn.execute("SELECT 1 FROM runs WHERE id = %s", (run_id,)).fetchone() is None:
                    return None
                merged = 0
                for entry in spooled.entries:
                    self._apply_spooled(conn, run_id, entry)
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

        return self._guard(op)

    def _apply_spooled(
        self, conn: psycopg.Connection[Any], run_id: str, entry: dict[str, Any]
    ) -> None:
        """One spooled write: fields (unless the ledger is newer), components, points."""
        fields = entry.get("fields") or {}
        cols, values = job_sets(sorted(set(fields) & (set(self._cols(conn)) - _FIXED)), fields)
        if cols:
            row = conn.execute(
                "SELECT heartbeat_at FROM runs WHERE id = %s FOR UPDATE", (run_id,)
            ).fetchone()
            beat = fields.get("heartbeat_at")
            if row is None or not isinstance(beat, int | float) or beat >= row[0]:
                conn.execute(
                    f"UPDATE runs SET {', '.join(f'{_q(c)} = %s' for c in cols)} WHERE id = %s",
                    [*values, run_id],
                )
                parts = [ComponentEnergy(**c) for c in entry.get("components") or []]
                if parts:
                    _replace_components(conn, run_id, parts)
        _add_points(
            conn,
            [(run_id, *s) for s in entry.get("samples") or []],
            [(run_id, *m) for m in entry.get("metrics") or []],
        )

    def _liveness(self, run: RunRecord, now: float) -> _liveness.Liveness:
        return _liveness.effective_state(
            host=run.host, pid=run.pid, heartbeat_at=run.heartbeat_at, record=run.record,
            now=now, this_host=self._host, margin_s=self.stale_after_s,
        )  # fmt: skip

    def reap(self, *, now: float | None = None) -> list[str]:
        """Persist ``crashed`` for every running run whose tracker is gone (a write)."""
        now = time.time() if now is None else now
        self._refuse_if_readonly()

        def op() -> list[str]:
            conn = self._connection()
            # A writer step: like SQLite's, it creates or migrates the ledger (this is how
            # its owner sets it up: `wattwise --store URL doctor --repair`).
            self._ensure_schema(conn)
            rows = conn.execute(
                "SELECT * FROM runs WHERE status = %s", (RunStatus.RUNNING.value,)
            )
            dead = [
                (run.id, verdict.note)
                for run in self._decode_runs(conn, rows, judge=False)
                if not (verdict := self._liveness(run, now)).alive
            ]
            reaped = []
            if dead:
                with self._write() as conn:
                    for run_id, note in dead:
                        cur = conn.execute(
                            "UPDATE runs SET status = %s, ended_at = heartbeat_at "
                            "WHERE id = %s AND status = %s",
                            (RunStatus.CRASHED.value, run_id, RunStatus.RUNNING.value),
                        )
                        if cur.rowcount:
                            reaped.append(run_id)
                            if note:
                                _annotate(conn, run_id, "notes", f"marked crashed: {note}")
            return reaped

        return self._guard(op)

    # -- reads ----------------------------------------------------------------------

    def schema_version(self) -> int:
        """The ledger's schema version (0: no tables yet)."""
        return self._guard(lambda: self._schema(self._connection()))

    def get_run(self, ref: str) -> RunRecord:
        """The run whose id is ``ref`` or starts with it (at least 4 characters)."""

        def op() -> list[RunRecord]:
            conn = self._reader()
            if conn is None:
                return []
            if len(ref) < 4:
                cur = conn.execute("SELECT * FROM runs WHERE id = %s", (ref,))
            else:
                cur = conn.execute(
                    "SELECT * FROM runs WHERE id LIKE %s ESCAPE '\\' ORDER BY started_at "
                    "LIMIT 5",
                    (_like_prefix(ref),),
                )
            return self._decode_runs(conn, cur)

        runs = self._guard(op)
        if not runs:
            msg = f"No run {ref!r} in the ledger {self._public}. List runs with 'wattwise runs'."
            raise RunNotFoundError(msg)
        if len(runs) > 1:
            ids = ", ".join(r.id[:12] for r in runs)
            msg = f"Run prefix {ref!r} is ambiguous ({ids}); give more characters."
            raise RunNotFoundError(msg)
        return runs[0]

    def _where(
        self, conn: psycopg.Connection[Any], *, status: str | None, study_id: str | None,
        top_level: bool, user: str | None, host: str | None, job_id: str | None = None,
    ) -> tuple[list[str], list[Any]]:  # fmt: skip
        where: list[str] = []
        args: list[Any] = []
        if status is not None:
            # A run the ledger says is running may be shown crashed (and only those).
            statuses = {status, RunStatus.RUNNING.value} if status == "crashed" else {status}
            where.append("status = ANY(%s)")
            args.append(sorted(statuses))
        if study_id == "":  # NO_STUDY
            where.append("study_id IS NULL")
        elif study_id is not None:
            where.append("study_id = %s")
            args.append(study_id)
        if top_level:
            where.append("parent_id IS NULL")
        if user is not None:
            if "user" not in self._run_columns(conn):
                where.append("FALSE")
            else:
                where.append('"user" = %s')
                args.append(user)
        if host is not None:
            where.append("host = %s")
            args.append(host)
        if job_id is not None:
            if "job_id" not in self._run_columns(conn):
                where.append("FALSE")  # no run had a job before schema 5
            else:
                where.append("job_id = %s")
                args.append(job_id)
        return where, args

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
        """Runs matching every filter, paged newest first (see the base class)."""
        # Effective statuses need the liveness verdict: page in Python for those filters.
        judged = status in (RunStatus.RUNNING.value, RunStatus.CRASHED.value)

        def op() -> list[RunRecord]:
            conn = self._reader()
            if conn is None:
                return []
            where, args = self._where(conn, status=status, study_id=study_id,
                                      top_level=top_level, user=user, host=host,
                                      job_id=job_id)  # fmt: skip
            sql = "SELECT * FROM runs"
            if where:
                sql += " WHERE " + " AND ".join(where)
            sql += " ORDER BY started_at DESC, id"
            if not judged:
                if limit is not None:
                    sql += " LIMIT %s"
                    args.append(max(0, int(limit)))
                if offset:
                    sql += " OFFSET %s"
                    args.append(max(0, int(offset)))
            return self._decode_runs(conn, conn.execute(sql, args))

        runs = self._guard(op)
        if judged:
            runs = [r for r in runs if r.status.value == status]
            start = max(0, int(offset))
            runs = runs[start:] if limit is None else runs[start : start + max(0, int(limit))]
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
        """How many runs :meth:`list_runs` would return with these filters and no limit."""
        if status is not None and status != RunStatus.FINISHED.value:
            return len(self.list_runs(status=status, study_id=study_id, top_level=top_level,
                                      user=user, host=host, job_id=job_id))  # fmt: skip

        def op() -> int:
            conn = self._reader()
            if conn is None:
                return 0
            where, args = self._where(conn, status=status, study_id=study_id,
                                      top_level=top_level, user=user, host=host,
                                      job_id=job_id)  # fmt: skip
            sql = "SELECT count(*) FROM runs" + (" WHERE " + " AND ".join(where) if where else "")
            row = conn.execute(sql, args).fetchone()
            return int(row[0]) if row else 0

        return self._guard(op)

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
        """Sums per group, role and effective status, computed by the server."""
        check_group_by(group_by)

        def op() -> list[AggregateRow]:
            conn = self._reader()
            if conn is None:
                return []
            have = self._run_columns(conn)
            where, args = self._where(conn, status=None, study_id=study_id,
                                      top_level=top_level, user=user, host=host,
                                      job_id=job_id)  # fmt: skip
            join = ""
            group = {
                "none": "NULL::text",
                "user": '"user"' if "user" in have else "NULL::text",
                "host": "host",
                "month": "to_char(to_timestamp(started_at) AT TIME ZONE 'UTC', 'YYYY-MM')",
                "status": "status",
                "role": "NULL::text",  # filled below from the role
                "region": "region",
                "kind": "kind",
                "study": "study_id",
                "job": "job_id" if "job_id" in have else "NULL::text",
                "tag": "tag.value",
            }[group_by]
            if group_by == "tag":
                join = (
                    " LEFT JOIN LATERAL jsonb_array_elements_text("
                    "CASE WHEN jsonb_typeof(tags::jsonb) = 'array' THEN tags::jsonb "
                    "ELSE '[]'::jsonb END) AS tag(value) ON TRUE"
                )
            role = (
                "coalesce(role, " if "role" in have else "("
            ) + (
                "CASE WHEN kind IN ('trial', 'study') OR study_id IS NOT NULL "
                "THEN 'tuning' ELSE 'final' END)"
            )
            if group_by == "role":
                group = role
            running = RunStatus.RUNNING.value
            # Running rows are judged one by one (alive or crashed); the rest are summed.
            sql = (
                f"SELECT {group} AS grp, {role} AS role, status, count(*), "
                "coalesce(sum(duration_s), 0), coalesce(sum(energy_j), 0), "
                "coalesce(sum(energy_band_j), 0), coalesce(sum(co2e_g), 0), "
                "coalesce(sum(co2e_band_g), 0), min(started_at), max(started_at) "
                f"FROM runs{join} WHERE status <> %s"
                + "".join(f" AND {w}" for w in where)
                + " GROUP BY 1, 2, 3"
            )
            rows = [AggregateRow(*r) for r in conn.execute(sql, [running, *args])]
            live_sql = (
                f"SELECT {group} AS grp, {role} AS role, runs.* FROM runs{join} "
                "WHERE status = %s" + "".join(f" AND {w}" for w in where)
            )
            cur = conn.execute(live_sql, [running, *args])
            names = [d.name for d in cur.description or ()]
            extra: dict[tuple[str | None, str, str], AggregateRow] = {}
            now = time.time()
            for raw in cur.fetchall():
                run = self._record(dict(zip(names[2:], raw[2:], strict=True)))
                status = RunStatus.RUNNING.value
                if not self._liveness(run, now).alive:
                    status = RunStatus.CRASHED.value
                key = (raw[0], raw[1], status)
                extra[key] = _add(extra.get(key), key, run)
            merged: dict[tuple[str | None, str, str], AggregateRow] = {
                (r.group, r.role, r.status): r for r in rows
            }
            for key, row in extra.items():
                merged[key] = _combine(merged.get(key), row)
            return sorted(
                merged.values(),
                key=lambda r: (r.group is None, r.group or "", r.role, r.status),
            )

        return self._guard(op)

    def metrics(self, run_id: str) -> list[Metric]:
        """Metric points of a run in logging order: ``(step, key, value, logged_at)``."""

        def op() -> list[Metric]:
            conn = self._reader()
            if conn is None:
                return []
            return [
                (r[0], r[1], r[2], r[3])
                for r in conn.execute(
                    "SELECT step, key, value, logged_at FROM metrics WHERE run_id = %s "
                    "ORDER BY seq",
                    (run_id,),
                )
            ]

        return self._guard(op)

    def iter_metrics(self, run_ids: Iterable[str] | None = None) -> Iterator[RunMetric]:
        """Metric points of many runs, by run then logging order, fetched in batches."""
        wanted = None if run_ids is None else sorted(set(run_ids))
        after: tuple[str, int] = ("", -1)
        while True:

            def op(after: tuple[str, int] = after) -> list[tuple[Any, ...]]:
                conn = self._reader()
                if conn is None:
                    return []
                sql = (
                    "SELECT run_id, seq, step, key, value, logged_at FROM metrics "
                    "WHERE (run_id, seq) > (%s, %s)"
                )
                args: list[Any] = [after[0], after[1]]
                if wanted is not None:
                    sql += " AND run_id = ANY(%s)"
                    args.append(wanted)
                sql += " ORDER BY run_id, seq LIMIT %s"
                args.append(_BATCH)
                return conn.execute(sql, args).fetchall()

            if wanted == []:
                return
            batch = self._guard(op)
            for row in batch:
                yield (row[0], row[2], row[3], row[4], row[5])
            if len(batch) < _BATCH:
                return
            after = (batch[-1][0], batch[-1][1])

    def samples(self, run_id: str) -> list[Sample]:
        """Power samples of a run: ``(t_s, component, power_w, energy_j)`` by time."""

        def op() -> list[Sample]:
            conn = self._reader()
            if conn is None:
                return []
            return [
                (r[0], r[1], r[2], r[3])
                for r in conn.execute(
                    "SELECT t_s, component, power_w, energy_j FROM samples WHERE run_id = %s "
                    "ORDER BY t_s, component",
                    (run_id,),
                )
            ]

        return self._guard(op)

    def get_artifact(self, run_id: str, name: str) -> bytes | None:
        """A run's artifact, checked against its sha256; None if there is none."""

        def op() -> tuple[str, bytes] | None:
            conn = self._reader()
            if conn is None:
                return None
            sql = (
                "SELECT a.sha256, b.content FROM artifacts AS a "
                "JOIN blobs AS b ON b.sha256 = a.sha256 WHERE a.run_id = %s AND a.name = %s"
            )
            if self._schema(conn) < 3:  # content still inline (before migration 3)
                sql = "SELECT sha256, content FROM artifacts WHERE run_id = %s AND name = %s"
            row = conn.execute(sql, (run_id, name)).fetchone()
            return None if row is None else (row[0], bytes(row[1]))

        found = self._guard(op)
        if found is None:
            return None
        digest, content = found
        return verified_artifact(content, digest, name=name, run_id=run_id, where=self._public)

    def artifacts(self, run_id: str) -> list[dict[str, Any]]:
        """A run's artifacts without their content, by name."""

        def op() -> list[dict[str, Any]]:
            conn = self._reader()
            if conn is None:
                return []
            return [
                {"name": r[0], "sha256": r[1], "size_bytes": r[2], "created_at": r[3]}
                for r in conn.execute(
                    "SELECT name, sha256, size_bytes, created_at FROM artifacts "
                    "WHERE run_id = %s ORDER BY name",
                    (run_id,),
                )
            ]

        return self._guard(op)

    def reuse_events(
        self, *, cache_key: str | None = None, consumer_run_id: str | None = None
    ) -> list[ReuseEvent]:
        """Cache hits, oldest first, optionally for one entry or one consuming run."""
        where, args = [], []
        if cache_key is not None:
            where.append("cache_key = %s")
            args.append(cache_key)
        if consumer_run_id is not None:
            where.append("consumer_run_id = %s")
            args.append(consumer_run_id)
        def op() -> list[ReuseEvent]:
            conn = self._reader()
            if conn is None:
                return []
            have = self._run_columns(conn, "reuse")  # no user before schema 5
            names = [_q(n) if n in have else "NULL" for n in _REUSE_NAMES]
            sql = f"SELECT {', '.join(names)} FROM reuse"
            if where:
                sql += " WHERE " + " AND ".join(where)
            sql += " ORDER BY seq"
            return [ReuseEvent(*row) for row in conn.execute(sql, args)]

        return self._guard(op)

    def reuse_totals(self) -> ReuseTotals:
        """What every cache hit recorded in this ledger avoided, summed."""

        def op() -> ReuseTotals:
            conn = self._reader()
            if conn is None:
                return ReuseTotals(hits=0, energy_j=0.0, co2e_g=0.0, duration_s=0.0)
            row = conn.execute(
                "SELECT count(*), coalesce(sum(energy_avoided_j), 0), "
                "coalesce(sum(co2e_avoided_g), 0), coalesce(sum(duration_avoided_s), 0) "
                "FROM reuse"
            ).fetchone()
            assert row is not None
            return ReuseTotals(hits=row[0], energy_j=row[1], co2e_g=row[2], duration_s=row[3])

        return self._guard(op)

    def last_metrics(self, run_ids: Iterable[str]) -> dict[str, dict[str, float]]:
        """Each metric's last value per run, chosen by the server (``DISTINCT ON``), 500
        runs per query."""
        ids = list(dict.fromkeys(run_ids))
        last: dict[str, dict[str, float]] = {}

        def query(chunk: list[str]) -> list[tuple[Any, ...]]:
            conn = self._reader()
            if conn is None:
                return []
            return conn.execute(
                "SELECT run_id, key, value FROM (SELECT DISTINCT ON (run_id, key) run_id, key, "
                "value, seq FROM metrics WHERE run_id = ANY(%s) ORDER BY run_id, key, seq DESC) "
                "AS last ORDER BY seq", (chunk,),
            ).fetchall()  # fmt: skip

        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]

            def op(chunk: list[str] = chunk) -> list[tuple[Any, ...]]:
                return query(chunk)

            for run_id, key, value in self._guard(op):
                last.setdefault(run_id, {})[key] = value
        return last

    def record_mentions(self, needles: Iterable[str]) -> set[str]:
        """Which needles occur in some run's stored record or annotated fact: the stored
        text is searched a batch at a time, once (no record is parsed)."""

        def op() -> set[str]:
            conn = self._reader()
            if conn is None:
                return set()
            cur = conn.execute("SELECT record FROM runs UNION ALL SELECT value FROM annotations")
            return mentions_in((row[0] for row in cur), needles)

        return self._guard(op)

    def reuse_by_user(self) -> dict[str | None, ReuseTotals]:
        """What cache hits avoided, per user who saved it."""

        def op() -> dict[str | None, ReuseTotals]:
            conn = self._reader()
            if conn is None:
                return {}
            user = '"user"' if "user" in self._run_columns(conn, "reuse") else "NULL::text"
            return {
                row[0]: ReuseTotals(hits=row[1], energy_j=row[2], co2e_g=row[3],
                                    duration_s=row[4])
                for row in conn.execute(
                    f"SELECT {user}, count(*), coalesce(sum(energy_avoided_j), 0), "
                    "coalesce(sum(co2e_avoided_g), 0), coalesce(sum(duration_avoided_s), 0) "
                    "FROM reuse GROUP BY 1"
                )
            }  # fmt: skip

        return self._guard(op)

    # -- decoding -------------------------------------------------------------------

    def _record(self, data: dict[str, Any]) -> RunRecord:
        values = {k: v for k, v in data.items() if k in _RECORD_FIELDS}
        for col in JSON_COLUMNS & values.keys():
            values[col] = json.loads(values[col])
        values["status"] = RunStatus(values["status"])
        return RunRecord(**values)

    def _decode_runs(
        self, conn: psycopg.Connection[Any], cur: Any, *, judge: bool = True
    ) -> list[RunRecord]:
        """Rows of ``SELECT * FROM runs`` as records, with components and annotations."""
        names = [d.name for d in cur.description or ()]
        runs = [self._record(dict(zip(names, row, strict=True))) for row in cur.fetchall()]
        by_id = {r.id: r for r in runs}
        if by_id:
            ids = list(by_id)
            for row in conn.execute(
                "SELECT run_id, component, energy_j, machine_energy_j, band_j, method, meter, "
                "source, info FROM components WHERE run_id = ANY(%s) ORDER BY component",
                (ids,),
            ):
                by_id[row[0]].components.append(
                    ComponentEnergy(
                        component=row[1], energy_j=row[2], machine_energy_j=row[3],
                        band_j=row[4], method=row[5], meter=row[6], source=row[7],
                        info=json.loads(row[8]),
                    )
                )  # fmt: skip
            for run_id, key, value, is_append in conn.execute(
                "SELECT run_id, key, value, is_append FROM annotations "
                "WHERE run_id = ANY(%s) ORDER BY seq",
                (ids,),
            ):
                record = by_id[run_id].record
                if is_append:
                    existing = record.get(key)
                    if not isinstance(existing, list):
                        existing = record[key] = []
                    existing.append(json.loads(value))
                else:
                    record[key] = json.loads(value)
        if judge:
            now = time.time()
            for run in runs:
                if run.status is RunStatus.RUNNING:
                    _judge(run, self._liveness(run, now))
        return runs


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


def _add(
    row: AggregateRow | None, key: tuple[str | None, str, str], run: RunRecord
) -> AggregateRow:
    one = AggregateRow(
        group=key[0], role=key[1], status=key[2], runs=1, duration_s=run.duration_s,
        energy_j=run.energy_j, energy_band_j=run.energy_band_j, co2e_g=run.co2e_g,
        co2e_band_g=run.co2e_band_g, first_started_at=run.started_at,
        last_started_at=run.started_at,
    )  # fmt: skip
    return _combine(row, one)


def _combine(a: AggregateRow | None, b: AggregateRow) -> AggregateRow:
    if a is None:
        return b
    firsts = [t for t in (a.first_started_at, b.first_started_at) if t is not None]
    lasts = [t for t in (a.last_started_at, b.last_started_at) if t is not None]
    return dataclasses.replace(
        a, runs=a.runs + b.runs, duration_s=a.duration_s + b.duration_s,
        energy_j=a.energy_j + b.energy_j, energy_band_j=a.energy_band_j + b.energy_band_j,
        co2e_g=a.co2e_g + b.co2e_g, co2e_band_g=a.co2e_band_g + b.co2e_band_g,
        first_started_at=min(firsts) if firsts else None,
        last_started_at=max(lasts) if lasts else None,
    )  # fmt: skip


def _like_prefix(ref: str) -> str:
    escaped = ref.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped + "%"


def _annotate(conn: psycopg.Connection[Any], run_id: str, key: str, value: Any) -> None:
    conn.execute(
        "INSERT INTO annotations (run_id, key, value, is_append, written_at) "
        "VALUES (%s, %s, %s, 1, %s)",
        (run_id, key, json_text(value), time.time()),
    )


def _add_points(
    conn: psycopg.Connection[Any], samples: list[tuple[Any, ...]], metrics: list[tuple[Any, ...]]
) -> None:
    samples, metrics = valid_points(samples, 2), valid_points(metrics, 2)  # after run_id
    with conn.cursor() as cur:
        if samples:
            cur.executemany(
                "INSERT INTO samples (run_id, t_s, component, power_w, energy_j) "
                "VALUES (%s, %s, %s, %s, %s)",
                samples,
            )
        if metrics:
            cur.executemany(
                "INSERT INTO metrics (run_id, step, key, value, logged_at) "
                "VALUES (%s, %s, %s, %s, %s)",
                metrics,
            )


def _replace_components(
    conn: psycopg.Connection[Any], run_id: str, components: Sequence[ComponentEnergy]
) -> None:
    if not components:
        return
    components = valid(list(components))
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO components (run_id, component, energy_j, machine_energy_j, band_j, "
            "method, meter, source, info) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) "
            "ON CONFLICT (run_id, component) DO UPDATE SET energy_j = EXCLUDED.energy_j, "
            "machine_energy_j = EXCLUDED.machine_energy_j, band_j = EXCLUDED.band_j, "
            "method = EXCLUDED.method, meter = EXCLUDED.meter, source = EXCLUDED.source, "
            "info = EXCLUDED.info",
            [_component_row(run_id, c) for c in components],
        )


def _component_row(run_id: str, c: ComponentEnergy) -> tuple[Any, ...]:
    info = json_text(c.info)
    return (run_id, c.component, c.energy_j, c.machine_energy_j, c.band_j, c.method, c.meter,
            c.source, info)  # fmt: skip

"""The ledger's schema: one versioned list of migrations that every SQL backend follows.

Each :class:`Migration` takes the schema from ``version - 1`` to ``version`` and carries its
statements per dialect (``sqlite``, ``postgresql``): the same tables, columns and meaning,
spelt in each database's SQL. A backend records each applied version in the
``schema_migrations`` table (version, name, applied_at); SQLite also keeps
``PRAGMA user_version`` in step, so a wattwise that predates the table still refuses a newer
ledger, and a ledger written before the table existed (``user_version`` 1 to 3) is read
from its pragma and gets the table on its first write. A ledger at a higher version than
:data:`SCHEMA_VERSION` is refused rather than misread. Only writers migrate; readers of
an older ledger read an upgraded copy or view.

``user`` is a reserved word in PostgreSQL: the column is always written ``"user"``.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Protocol

DIALECTS = ("sqlite", "postgresql")
SCHEMA_TABLE = "schema_migrations"


@dataclasses.dataclass(frozen=True)
class Migration:
    """One step of the schema: its version, what it does, and its SQL per dialect."""

    version: int
    name: str
    sqlite: tuple[str, ...]
    postgresql: tuple[str, ...]

    def statements(self, dialect: str) -> tuple[str, ...]:
        """The statements for ``dialect`` (``sqlite`` or ``postgresql``)."""
        if dialect not in DIALECTS:
            msg = f"Unknown SQL dialect {dialect!r}: use one of {', '.join(DIALECTS)}."
            raise ValueError(msg)
        result: tuple[str, ...] = getattr(self, dialect)
        return result


_SQLITE_1: tuple[str, ...] = (
    """
    CREATE TABLE runs (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        kind TEXT NOT NULL,
        status TEXT NOT NULL,
        parent_id TEXT,
        study_id TEXT,
        started_at REAL NOT NULL,
        ended_at REAL,
        heartbeat_at REAL NOT NULL,
        duration_s REAL NOT NULL DEFAULT 0,
        exit_code INTEGER,
        host TEXT NOT NULL,
        pid INTEGER NOT NULL,
        energy_j REAL NOT NULL DEFAULT 0,
        energy_band_j REAL NOT NULL DEFAULT 0,
        machine_energy_j REAL NOT NULL DEFAULT 0,
        co2e_g REAL NOT NULL DEFAULT 0,
        co2e_band_g REAL NOT NULL DEFAULT 0,
        region TEXT,
        tags TEXT NOT NULL DEFAULT '[]',
        params TEXT NOT NULL DEFAULT '{}',
        record TEXT NOT NULL DEFAULT '{}'
    )
    """,
    "CREATE INDEX runs_started ON runs (started_at)",
    "CREATE INDEX runs_status ON runs (status)",
    "CREATE INDEX runs_study ON runs (study_id)",
    """
    CREATE TABLE components (
        run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
        component TEXT NOT NULL,
        energy_j REAL NOT NULL,
        machine_energy_j REAL NOT NULL,
        band_j REAL,
        method TEXT NOT NULL,
        meter TEXT NOT NULL,
        source TEXT NOT NULL,
        info TEXT NOT NULL DEFAULT '{}',
        PRIMARY KEY (run_id, component)
    )
    """,
    """
    CREATE TABLE metrics (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
        step INTEGER,
        key TEXT NOT NULL,
        value REAL NOT NULL,
        logged_at REAL NOT NULL
    )
    """,
    "CREATE INDEX metrics_run ON metrics (run_id, key)",
    """
    CREATE TABLE samples (
        run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
        t_s REAL NOT NULL,
        component TEXT NOT NULL,
        power_w REAL NOT NULL,
        energy_j REAL NOT NULL
    )
    """,
    "CREATE INDEX samples_run ON samples (run_id, t_s)",
)

_SQLITE_2: tuple[str, ...] = (
    """
    CREATE TABLE artifacts (
        run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
        name TEXT NOT NULL,
        sha256 TEXT NOT NULL,
        size_bytes INTEGER NOT NULL,
        content BLOB NOT NULL,
        created_at REAL NOT NULL,
        PRIMARY KEY (run_id, name)
    )
    """,
    """
    CREATE TABLE annotations (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
        key TEXT NOT NULL,
        value TEXT NOT NULL,
        is_append INTEGER NOT NULL DEFAULT 0,
        written_at REAL NOT NULL
    )
    """,
    "CREATE INDEX annotations_run ON annotations (run_id)",
    """
    CREATE TABLE reuse (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        at REAL NOT NULL,
        cache_key TEXT NOT NULL,
        function TEXT NOT NULL,
        producer_run_id TEXT,
        consumer_run_id TEXT,
        energy_avoided_j REAL NOT NULL,
        co2e_avoided_g REAL NOT NULL,
        duration_avoided_s REAL NOT NULL,
        method TEXT NOT NULL,
        basis TEXT NOT NULL,
        cache_url TEXT NOT NULL
    )
    """,
    "CREATE INDEX reuse_at ON reuse (at)",
    "CREATE INDEX reuse_key ON reuse (cache_key)",
)

_SQLITE_3: tuple[str, ...] = (
    """
    CREATE TABLE blobs (
        sha256 TEXT PRIMARY KEY,
        size_bytes INTEGER NOT NULL,
        content BLOB NOT NULL
    )
    """,
    "INSERT OR IGNORE INTO blobs (sha256, size_bytes, content) "
    "SELECT sha256, size_bytes, content FROM artifacts",
    """
    CREATE TABLE artifacts_v3 (
        run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
        name TEXT NOT NULL,
        sha256 TEXT NOT NULL REFERENCES blobs (sha256),
        size_bytes INTEGER NOT NULL,
        created_at REAL NOT NULL,
        PRIMARY KEY (run_id, name)
    )
    """,
    "INSERT INTO artifacts_v3 (run_id, name, sha256, size_bytes, created_at) "
    "SELECT run_id, name, sha256, size_bytes, created_at FROM artifacts",
    "DROP TABLE artifacts",
    "ALTER TABLE artifacts_v3 RENAME TO artifacts",
    "CREATE INDEX artifacts_sha256 ON artifacts (sha256)",
    """
    CREATE TRIGGER artifacts_release_blob AFTER DELETE ON artifacts
    WHEN NOT EXISTS (SELECT 1 FROM artifacts WHERE sha256 = OLD.sha256)
    BEGIN
        DELETE FROM blobs WHERE sha256 = OLD.sha256;
    END
    """,
)

_PG_1: tuple[str, ...] = (
    """
    CREATE TABLE runs (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        kind TEXT NOT NULL,
        status TEXT NOT NULL,
        parent_id TEXT,
        study_id TEXT,
        started_at DOUBLE PRECISION NOT NULL,
        ended_at DOUBLE PRECISION,
        heartbeat_at DOUBLE PRECISION NOT NULL,
        duration_s DOUBLE PRECISION NOT NULL DEFAULT 0,
        exit_code INTEGER,
        host TEXT NOT NULL,
        pid INTEGER NOT NULL,
        energy_j DOUBLE PRECISION NOT NULL DEFAULT 0,
        energy_band_j DOUBLE PRECISION NOT NULL DEFAULT 0,
        machine_energy_j DOUBLE PRECISION NOT NULL DEFAULT 0,
        co2e_g DOUBLE PRECISION NOT NULL DEFAULT 0,
        co2e_band_g DOUBLE PRECISION NOT NULL DEFAULT 0,
        region TEXT,
        tags TEXT NOT NULL DEFAULT '[]',
        params TEXT NOT NULL DEFAULT '{}',
        record TEXT NOT NULL DEFAULT '{}'
    )
    """,
    "CREATE INDEX runs_started ON runs (started_at)",
    "CREATE INDEX runs_status ON runs (status)",
    "CREATE INDEX runs_study ON runs (study_id)",
    """
    CREATE TABLE components (
        run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
        component TEXT NOT NULL,
        energy_j DOUBLE PRECISION NOT NULL,
        machine_energy_j DOUBLE PRECISION NOT NULL,
        band_j DOUBLE PRECISION,
        method TEXT NOT NULL,
        meter TEXT NOT NULL,
        source TEXT NOT NULL,
        info TEXT NOT NULL DEFAULT '{}',
        PRIMARY KEY (run_id, component)
    )
    """,
    """
    CREATE TABLE metrics (
        seq BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
        run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
        step BIGINT,
        key TEXT NOT NULL,
        value DOUBLE PRECISION NOT NULL,
        logged_at DOUBLE PRECISION NOT NULL
    )
    """,
    "CREATE INDEX metrics_run ON metrics (run_id, key)",
    """
    CREATE TABLE samples (
        run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
        t_s DOUBLE PRECISION NOT NULL,
        component TEXT NOT NULL,
        power_w DOUBLE PRECISION NOT NULL,
        energy_j DOUBLE PRECISION NOT NULL
    )
    """,
    "CREATE INDEX samples_run ON samples (run_id, t_s)",
)

_PG_2: tuple[str, ...] = (
    """
    CREATE TABLE artifacts (
        run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
        name TEXT NOT NULL,
        sha256 TEXT NOT NULL,
        size_bytes BIGINT NOT NULL,
        content BYTEA NOT NULL,
        created_at DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (run_id, name)
    )
    """,
    """
    CREATE TABLE annotations (
        seq BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
        run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
        key TEXT NOT NULL,
        value TEXT NOT NULL,
        is_append INTEGER NOT NULL DEFAULT 0,
        written_at DOUBLE PRECISION NOT NULL
    )
    """,
    "CREATE INDEX annotations_run ON annotations (run_id)",
    """
    CREATE TABLE reuse (
        seq BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
        at DOUBLE PRECISION NOT NULL,
        cache_key TEXT NOT NULL,
        function TEXT NOT NULL,
        producer_run_id TEXT,
        consumer_run_id TEXT,
        energy_avoided_j DOUBLE PRECISION NOT NULL,
        co2e_avoided_g DOUBLE PRECISION NOT NULL,
        duration_avoided_s DOUBLE PRECISION NOT NULL,
        method TEXT NOT NULL,
        basis TEXT NOT NULL,
        cache_url TEXT NOT NULL
    )
    """,
    "CREATE INDEX reuse_at ON reuse (at)",
    "CREATE INDEX reuse_key ON reuse (cache_key)",
)

_PG_3: tuple[str, ...] = (
    """
    CREATE TABLE blobs (
        sha256 TEXT PRIMARY KEY,
        size_bytes BIGINT NOT NULL,
        content BYTEA NOT NULL
    )
    """,
    "INSERT INTO blobs (sha256, size_bytes, content) "
    "SELECT DISTINCT ON (sha256) sha256, size_bytes, content FROM artifacts "
    "ON CONFLICT (sha256) DO NOTHING",
    "ALTER TABLE artifacts DROP COLUMN content",
    "ALTER TABLE artifacts ADD FOREIGN KEY (sha256) REFERENCES blobs (sha256)",
    "CREATE INDEX artifacts_sha256 ON artifacts (sha256)",
    """
    CREATE FUNCTION wattwise_release_blob() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF NOT EXISTS (SELECT 1 FROM artifacts WHERE sha256 = OLD.sha256) THEN
            DELETE FROM blobs WHERE sha256 = OLD.sha256;
        END IF;
        RETURN OLD;
    END
    $$
    """,
    "CREATE TRIGGER artifacts_release_blob AFTER DELETE ON artifacts "
    "FOR EACH ROW EXECUTE FUNCTION wattwise_release_blob()",
)

# 4: who ran it and what it was for: every run records its user (login name) and its
# role in the footprint (final, tuning, trial, cache-fill, ...; NULL for older rows,
# whose readers infer it); indexes for listing and grouping a team's ledger.
_SQLITE_4: tuple[str, ...] = (
    'ALTER TABLE runs ADD COLUMN "user" TEXT',
    "ALTER TABLE runs ADD COLUMN role TEXT",
    'CREATE INDEX runs_user ON runs ("user", started_at)',
    "CREATE INDEX runs_host ON runs (host, started_at)",
    "CREATE INDEX runs_parent_started ON runs (parent_id, started_at)",
    "CREATE INDEX metrics_seq_run ON metrics (run_id, seq)",
)
_PG_4: tuple[str, ...] = _SQLITE_4

# 5: the job a run belongs to (``record["job"]["id"]``, issue 11), indexed for a job's view;
# who saved each cache hit (the consuming run's user, filled in for older hits); and one
# covering index holding every column the project totals read, so ``aggregate`` (the
# footprint) never reads a run's row with its large ``record``. No release before this one
# wrote a job into a record, so ``job_id`` starts empty.
_SQLITE_5: tuple[str, ...] = (
    "ALTER TABLE runs ADD COLUMN job_id TEXT",
    "CREATE INDEX runs_job ON runs (job_id, started_at)",
    'ALTER TABLE reuse ADD COLUMN "user" TEXT',
    'UPDATE reuse SET "user" = (SELECT runs."user" FROM runs WHERE runs.id = '
    "reuse.consumer_run_id) WHERE consumer_run_id IS NOT NULL",
    'CREATE INDEX reuse_user ON reuse ("user")',
    'CREATE INDEX runs_totals ON runs (parent_id, status, "user", host, region, role, kind, '
    "study_id, started_at, duration_s, energy_j, energy_band_j, co2e_g, co2e_band_g, job_id)",
)
_PG_5: tuple[str, ...] = _SQLITE_5

MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "runs, per-component energy, metric series, power samples", _SQLITE_1, _PG_1),
    Migration(
        2,
        "run artifacts (the git diff), facts written by a run's child processes (seeds, data "
        "fingerprints), and cache hits with the energy they avoided",
        _SQLITE_2,
        _PG_2,
    ),
    Migration(
        3,
        "artifact content moves to content-addressed blobs, shared by the runs that have "
        "them; a blob goes when its last user does",
        _SQLITE_3,
        _PG_3,
    ),
    Migration(4, "runs record their user and role; indexes for a team's ledger", _SQLITE_4, _PG_4),
    Migration(
        5,
        "runs record their job (indexed); cache hits record who saved them; a covering "
        "index for project totals",
        _SQLITE_5,
        _PG_5,
    ),
)

SCHEMA_VERSION = len(MIGRATIONS)

#: The table of applied versions, per dialect.
SCHEMA_TABLE_SQL = {
    "sqlite": (
        f"CREATE TABLE IF NOT EXISTS {SCHEMA_TABLE} (version INTEGER PRIMARY KEY, "
        "name TEXT NOT NULL, applied_at REAL NOT NULL)"
    ),
    "postgresql": (
        f"CREATE TABLE IF NOT EXISTS {SCHEMA_TABLE} (version INTEGER PRIMARY KEY, "
        "name TEXT NOT NULL, applied_at DOUBLE PRECISION NOT NULL)"
    ),
}


class _Connection(Protocol):
    def execute(self, sql: str, params: Any = ..., /) -> Any: ...


def pending(current: int) -> tuple[Migration, ...]:
    """The migrations a ledger at version ``current`` still needs, in order."""
    return MIGRATIONS[current:]


def apply_migrations(
    conn: _Connection, dialect: str, current: int, *, placeholder: str = "?"
) -> int:
    """Bring a ledger from ``current`` to :data:`SCHEMA_VERSION` on ``conn``.

    The caller holds the ledger's write lock (one transaction): creates the
    ``schema_migrations`` table if missing, records the versions a pre-table ledger already
    had (1 to ``current``), runs each pending migration's statements for ``dialect`` and
    records it. Returns the new version.
    """
    conn.execute(SCHEMA_TABLE_SQL[dialect])
    insert = (
        f"INSERT INTO {SCHEMA_TABLE} (version, name, applied_at) "
        f"VALUES ({placeholder}, {placeholder}, {placeholder})"
    )
    have = {row[0] for row in conn.execute(f"SELECT version FROM {SCHEMA_TABLE}").fetchall()}
    now = time.time()
    for migration in MIGRATIONS[:current]:
        if migration.version not in have:  # applied before the table existed
            conn.execute(insert, (migration.version, migration.name, now))
    for migration in pending(current):
        for statement in migration.statements(dialect):
            conn.execute(statement)
        conn.execute(insert, (migration.version, migration.name, now))
    return SCHEMA_VERSION

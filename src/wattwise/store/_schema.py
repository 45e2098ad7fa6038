"""The ledger's schema and its migrations.

The schema version lives in SQLite's ``user_version`` pragma. Each migration is a list of
statements that takes the schema from version ``n - 1`` to ``n``; a ledger written by a
newer wattwise (higher version) is refused rather than misread.
"""

from __future__ import annotations

MIGRATIONS: tuple[tuple[str, ...], ...] = (
    # 1: runs, per-component energy, metric series, power samples.
    (
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
    ),
    # 2: run artifacts (the git diff), facts written by a run's child processes (seeds,
    # data fingerprints), and cache hits with the energy they avoided.
    (
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
    ),
    # 3: artifact content moves to content-addressed blobs, so identical diffs are stored
    # once and shared by the runs that have them; a blob goes when its last user does.
    (
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
    ),
)

SCHEMA_VERSION = len(MIGRATIONS)

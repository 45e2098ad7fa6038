"""A PostgreSQL store opened on an older ledger that ANOTHER process then migrates.

The store learns which columns the ledger's tables have (an older ledger has no ``user``
before schema 4, no ``job_id`` before schema 5). It must not keep what it learnt from the
older schema once another process has migrated the ledger: the runs and cache hits it
writes and reads afterwards keep their user and job. Real server (tests/pg_support.py),
real second process.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from wattwise.store import RunRecord, RunStatus
from wattwise.store._reuse import ReuseEvent
from wattwise.store._schema import MIGRATIONS, SCHEMA_VERSION

psycopg = pytest.importorskip(
    "psycopg", reason="psycopg 3 is not installed: PostgreSQL ledger tests SKIPPED "
    "(pip install -e '.[postgres]')",
)  # fmt: skip

from wattwise.store._postgres import PostgresRunStore  # noqa: E402

_MIGRATE = textwrap.dedent(
    """
    import os, time
    from wattwise.store import RunRecord, RunStatus
    from wattwise.store._postgres import PostgresRunStore

    store = PostgresRunStore(os.environ["LEDGER_URL"], start=os.environ["PROJECT"])
    now = time.time()
    store.insert_run(RunRecord(
        id="by-b", name="b", kind="run", status=RunStatus.FINISHED, started_at=now,
        heartbeat_at=now, host="b-host", pid=os.getpid(), user="bob",
    ))
    print(store.schema_version())
    store.close()
    """
)


def _old_ledger(url: str, version: int) -> None:
    """The ledger as the release at schema ``version`` left it, with one run and one hit."""
    with psycopg.connect(url, autocommit=True) as conn, conn.transaction():
        conn.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, "
                     "name TEXT NOT NULL, applied_at DOUBLE PRECISION NOT NULL)")  # fmt: skip
        for migration in MIGRATIONS[:version]:
            for statement in migration.statements("postgresql"):
                conn.execute(statement)
            conn.execute("INSERT INTO schema_migrations VALUES (%s, %s, 0)",
                         (migration.version, migration.name))  # fmt: skip
        conn.execute(
            "INSERT INTO runs (id, name, kind, status, started_at, heartbeat_at, host, pid, "
            "energy_j) VALUES ('old1', 'old', 'run', 'finished', 1, 2, 'h', 1, 5)"
        )
        conn.execute(
            "INSERT INTO reuse (at, cache_key, function, producer_run_id, consumer_run_id, "
            "energy_avoided_j, co2e_avoided_g, duration_avoided_s, method, basis, cache_url) "
            "VALUES (3, %s, 'm:f', 'old1', 'old1', 5, 1, 10, 'measured', 'FR', 'file:///c')",
            ("ab" * 32,),
        )


def _migrate_in_another_process(url: str, project: Path) -> None:
    env = {**os.environ, "LEDGER_URL": url, "PROJECT": str(project)}
    done = subprocess.run(
        [sys.executable, "-c", _MIGRATE], env=env, capture_output=True, text=True,
        timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(SCHEMA_VERSION)


def _run(run_id: str, *, user: str, job: str) -> RunRecord:
    now = time.time()
    return RunRecord(
        id=run_id, name="a", kind="run", status=RunStatus.RUNNING, started_at=now,
        heartbeat_at=now, host="a-host", pid=os.getpid(), user=user,
        record={"job": {"id": job}},
    )  # fmt: skip


def _stored(url: str, run_id: str) -> tuple[str | None, str | None]:
    with psycopg.connect(url) as conn:
        row = conn.execute('SELECT "user", job_id FROM runs WHERE id = %s', (run_id,)).fetchone()
    assert row is not None
    return row[0], row[1]


@pytest.mark.parametrize("version", [3, 4])
def test_a_store_keeps_user_and_job_after_another_process_migrates(
    pg_url: str, tmp_path: Path, version: int
) -> None:
    """Store A reads (and so learns the columns of) a schema-3 or -4 ledger; another process
    migrates it; what A then writes and reads has its user and job."""
    _old_ledger(pg_url, version)
    a = PostgresRunStore(pg_url, start=tmp_path)
    try:
        assert a.schema_version() == version
        # Every read that looks at the columns, while the ledger is old.
        assert [r.id for r in a.list_runs()] == ["old1"]
        assert a.list_runs(user="alice") == []
        assert a.list_runs(job_id="job-7") == []
        assert a.count_runs(user="alice") == 0
        assert [(row.group, row.runs) for row in a.aggregate("user")] == [(None, 1)]
        assert [e.user for e in a.reuse_events()] == [None]
        assert list(a.reuse_by_user()) == [None]

        _migrate_in_another_process(pg_url, tmp_path)

        a.insert_run(_run("by-a", user="alice", job="job-7"))
        assert _stored(pg_url, "by-a") == ("alice", "job-7")
        assert a.get_run("by-a").user == "alice"
        assert a.get_run("by-a").job_id == "job-7"
        assert [r.id for r in a.list_runs(user="alice")] == ["by-a"]
        assert [r.id for r in a.list_runs(job_id="job-7")] == ["by-a"]
        assert a.count_runs(user="bob") == 1
        groups: dict[str | None, int] = {}
        for row in a.aggregate("user"):
            groups[row.group] = groups.get(row.group, 0) + row.runs
        assert groups == {None: 1, "alice": 1, "bob": 1}

        a.add_reuse(ReuseEvent(
            at=time.time(), cache_key="cd" * 32, function="m:f", producer_run_id="old1",
            consumer_run_id="by-a", energy_avoided_j=2.0, co2e_avoided_g=0.5,
            duration_avoided_s=1.0, method="measured", basis="FR", cache_url="file:///c",
        ))  # fmt: skip
        assert [e.user for e in a.reuse_events()] == [None, "alice"]
        assert set(a.reuse_by_user()) == {None, "alice"}
    finally:
        a.close()


def test_a_read_only_store_sees_the_new_columns_after_another_process_migrates(
    pg_url: str, tmp_path: Path
) -> None:
    """A reader never migrates: it must still notice that someone else did."""
    _old_ledger(pg_url, 3)
    reader = PostgresRunStore(pg_url, start=tmp_path, readonly=True)
    try:
        assert reader.list_runs(user="bob") == []
        _migrate_in_another_process(pg_url, tmp_path)
        assert [r.id for r in reader.list_runs(user="bob")] == ["by-b"]
        assert reader.get_run("by-b").user == "bob"
        assert reader.schema_version() == SCHEMA_VERSION
    finally:
        reader.close()

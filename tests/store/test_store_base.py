"""get_store's dispatch, the migration list and its version table, login names, old ledgers."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from wattwise.exceptions import ConfigError, StoreError
from wattwise.store import (
    SCHEMA_VERSION,
    BaseRunStore,
    MemoryRunStore,
    SQLiteRunStore,
    get_store,
    login_name,
    open_store,
)
from wattwise.store._schema import DIALECTS, MIGRATIONS, SCHEMA_TABLE
from wattwise.testing.store_contract import OLD_LEDGER, make_run

FIXTURE = Path(__file__).parent / "fixtures" / "ledger_v0_1.db"


def test_plain_paths_and_sqlite_urls_open_the_same_file(tmp_path: Path) -> None:
    path = tmp_path / "l.db"
    first = get_store(str(path))
    assert isinstance(first, SQLiteRunStore)
    run = make_run()
    first.insert_run(run)
    assert first.url == f"sqlite:///{path}"
    for other in (get_store(first.url), open_store(f"sqlite:///{path}"), first.reopen()):
        assert other.get_run(run.id).id == run.id
        other.close()
    first.close()


def test_default_is_the_project_ledger_and_the_environment_overrides_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = get_store()
    assert store.path == Path.cwd().resolve() / ".wattwise" / "ledger.db"
    store.close()
    monkeypatch.setenv("WATTWISE_STORE", "memory://from-env")
    assert isinstance(get_store(), MemoryRunStore)
    assert get_store().url == "memory://from-env"


def test_memory_ledgers_are_shared_by_name_and_fresh_otherwise() -> None:
    named = get_store("memory://shared-by-name")
    run = make_run()
    named.insert_run(run)
    assert get_store("memory://shared-by-name").get_run(run.id).id == run.id
    fresh = get_store("memory://")
    assert fresh.list_runs() == []
    fresh.insert_run(make_run())
    assert get_store(fresh.url).count_runs() == 1  # its url opens it again
    assert get_store("memory://").count_runs() == 0


def test_an_unknown_scheme_is_one_line_with_the_accepted_forms() -> None:
    with pytest.raises(ConfigError) as caught:
        get_store("mysql://db/ledger")
    text = str(caught.value)
    assert "\n" not in text
    assert "'mysql'" in text and "postgresql://" in text and "memory://" in text


def test_postgres_is_imported_only_for_postgres_urls() -> None:
    code = (
        "import sys, wattwise.store as s\n"
        "s.get_store('memory://'); s.get_store('ledger.db')\n"
        "assert 'psycopg' not in sys.modules and 'wattwise.store._postgres' not in sys.modules\n"
        "import wattwise\n"
        "print('ok')"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "ok"


def test_every_migration_has_both_dialects_in_order() -> None:
    assert [m.version for m in MIGRATIONS] == list(range(1, SCHEMA_VERSION + 1))
    for migration in MIGRATIONS:
        assert migration.name
        for dialect in DIALECTS:
            assert migration.statements(dialect), (migration.version, dialect)
    with pytest.raises(ValueError, match="dialect"):
        MIGRATIONS[0].statements("oracle")


def test_a_new_ledger_records_every_version_applied(tmp_path: Path) -> None:
    store = get_store(str(tmp_path / "l.db"))
    store.insert_run(make_run())
    store.close()
    conn = sqlite3.connect(tmp_path / "l.db")
    rows = conn.execute(f"SELECT version, name FROM {SCHEMA_TABLE} ORDER BY version").fetchall()
    assert [r[0] for r in rows] == list(range(1, SCHEMA_VERSION + 1))
    assert all(r[1] for r in rows)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    columns = {row[1] for row in conn.execute("PRAGMA table_info(runs)")}
    assert {"user", "role"} <= columns


def test_the_v0_1_ledger_gets_the_version_table_on_its_first_write(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    shutil.copyfile(FIXTURE, path)
    store = get_store(str(path))
    first = store.list_runs()[0]
    store.annotate_run(first.id, "note", "migrate")
    store.close()
    conn = sqlite3.connect(path)
    versions = [r[0] for r in conn.execute(f"SELECT version FROM {SCHEMA_TABLE} ORDER BY 1")]
    assert versions == list(range(1, SCHEMA_VERSION + 1))  # 1-2 were there before the table
    assert conn.execute("SELECT count(*) FROM blobs").fetchone()[0] == 1  # schema 3 ran
    assert conn.execute('SELECT count(*) FROM runs WHERE "user" IS NULL').fetchone()[0] == len(
        OLD_LEDGER["runs"]
    )


def test_reading_an_old_ledger_leaves_its_bytes_alone(tmp_path: Path) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    path = folder / "ledger.db"
    shutil.copyfile(FIXTURE, path)
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    os.chmod(path, 0o444)
    os.chmod(folder, 0o555)
    try:
        store = get_store(str(path), readonly=True)
        assert store.count_runs() == len(OLD_LEDGER["runs"])
        assert store.aggregate("month")
        with pytest.raises(StoreError, match="read-only"):
            store.reap()
        store.close()
        assert hashlib.sha256(path.read_bytes()).hexdigest() == before
        # Only SQLite's own companions may appear (root ignores the folder's mode), and the
        # write-ahead log holds nothing: no page was written.
        extra = {p.name for p in folder.iterdir()} - {"ledger.db"}
        assert extra <= {"ledger.db-wal", "ledger.db-shm"}
        if "ledger.db-wal" in extra:
            assert (folder / "ledger.db-wal").stat().st_size == 0
    finally:
        os.chmod(folder, 0o755)


def test_a_newer_ledger_is_refused_by_readers_and_writers(tmp_path: Path) -> None:
    path = tmp_path / "l.db"
    store = get_store(str(path))
    store.insert_run(make_run())
    store.close()
    conn = sqlite3.connect(path)
    conn.execute(f"INSERT INTO {SCHEMA_TABLE} VALUES (?, 'from the future', 0)",
                 (SCHEMA_VERSION + 1,))  # fmt: skip
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match="newer than this wattwise"):
        get_store(str(path)).list_runs()


def test_login_name_never_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    assert login_name()
    import getpass

    def no_name() -> str:
        msg = "no user name"
        raise OSError(msg)

    monkeypatch.setattr(getpass, "getuser", no_name)
    assert login_name() == f"uid-{os.getuid()}"


def test_every_store_is_a_base_run_store(tmp_path: Path) -> None:
    for url in (str(tmp_path / "l.db"), "memory://"):
        store = get_store(url)
        assert isinstance(store, BaseRunStore)
        store.close()


@pytest.mark.parametrize("backend", ["sqlite", "memory"])
def test_a_run_resynced_into_a_replaced_ledger_keeps_its_user(
    tmp_path: Path, backend: str
) -> None:
    url = str(tmp_path / "l.db") if backend == "sqlite" else "memory://"
    store = get_store(url)
    run = make_run()  # its insert never reached this ledger (it was replaced mid-run)
    store.resync_run(run, {"energy_j": 5.0}, components=[], metrics=[(0, "loss", 1.0, 0.0)])
    got = store.get_run(run.id)
    assert (got.user, got.energy_j) == (login_name(), 5.0)
    assert store.metrics(run.id) == [(0, "loss", 1.0, 0.0)]
    store.close()


def test_a_schema_3_ledger_is_read_in_place_without_a_copy(tmp_path: Path) -> None:
    path = tmp_path / "v3.db"
    conn = sqlite3.connect(path)
    for migration in MIGRATIONS[:3]:
        for statement in migration.sqlite:
            conn.execute(statement)
    conn.execute("PRAGMA user_version = 3")
    conn.execute(
        "INSERT INTO runs (id, name, kind, status, started_at, heartbeat_at, host, pid, "
        "energy_j, study_id) VALUES ('r3aaaaaa', 'old', 'trial', 'finished', 1e9, 1e9, 'h', 1, "
        "7.0, 's')"
    )
    conn.commit()
    conn.close()
    reader = get_store(str(path), readonly=True)
    run = reader.get_run("r3aaaaaa")
    assert (run.user, run.role, run.energy_j) == (None, None, 7.0)
    assert [(r.role, r.runs) for r in reader.aggregate("user")] == [("tuning", 1)]
    files = [row[2] for row in reader._conn.execute("PRAGMA database_list")]
    assert str(path) in files  # the file itself, not a copy in memory
    assert reader.schema_version() == 3
    writer = get_store(str(path))
    writer.insert_run(make_run(name="new"))
    writer.close()
    assert reader.schema_version() == SCHEMA_VERSION
    assert sorted(r.name for r in reader.list_runs()) == ["new", "old"]
    fresh = get_store(str(path), readonly=True)
    assert {r.name: r.user for r in fresh.list_runs()} == {"old": None, "new": login_name()}


def test_a_spooled_run_keeps_the_user_of_the_process_that_ran_it(tmp_path: Path) -> None:
    from wattwise.store import Spool, read_spool

    store = get_store(str(tmp_path / "l.db"))
    run = make_run()
    spool = Spool(store.path, run.id, dataclasses.asdict(run))
    path = spool.append({"fields": {"energy_j": 1.0}}, reason="ledger locked")
    spool.close()
    spooled = read_spool(path)
    assert spooled is not None
    assert store.merge_spooled(spooled) == 1
    assert store.get_run(run.id).user == login_name()
    store.close()

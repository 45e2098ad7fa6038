from __future__ import annotations

import multiprocessing
import os
import sqlite3
import time
import uuid
from pathlib import Path

import pytest

from wattwise.exceptions import (
    RunNotFoundError,
    SchemaVersionError,
    StoreCorruptError,
    StoreError,
)
from wattwise.store import (
    SCHEMA_VERSION,
    ComponentEnergy,
    RunRecord,
    RunStatus,
    SQLiteRunStore,
    find_project_root,
    ledger_path,
    project_footprint,
)


def make_run(run_id: str | None = None, **kw: object) -> RunRecord:
    now = time.time()
    fields: dict[str, object] = {
        "id": run_id or uuid.uuid4().hex,
        "name": "r",
        "kind": "python",
        "status": RunStatus.RUNNING,
        "started_at": now,
        "heartbeat_at": now,
        "host": os.uname().nodename,
        "pid": os.getpid(),
    }
    fields.update(kw)
    return RunRecord(**fields)  # type: ignore[arg-type]


@pytest.fixture
def store(tmp_path: Path) -> SQLiteRunStore:
    s = SQLiteRunStore(tmp_path / "ledger.db")
    yield s
    s.close()


def test_new_ledger_is_wal_with_current_schema(tmp_path: Path) -> None:
    store = SQLiteRunStore(tmp_path / "new" / "l.db")
    assert store.list_runs() == []
    assert not (tmp_path / "new").exists()  # opening and reading create nothing
    store.insert_run(make_run())  # the first write creates the ledger
    store.close()
    conn = sqlite3.connect(tmp_path / "new" / "l.db")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()
    conn = sqlite3.connect(tmp_path / "new" / "l.db")
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_insert_flush_and_read_back(store: SQLiteRunStore) -> None:
    run = make_run(params={"lr": 0.1}, tags=["a"])
    store.insert_run(run)
    comp = ComponentEnergy("cpu", 10.0, 20.0, 4.0, "model", "cpu-model", "CCF", {"x": 1})
    store.flush_run(
        run.id,
        {"energy_j": 10.0, "status": RunStatus.FINISHED, "record": {"k": [1, 2]}},
        components=[comp],
        samples=[(1.0, "cpu", 10.0, 10.0)],
        metrics=[(1, "acc", 0.5, time.time()), (2, "acc", 0.7, time.time())],
    )
    got = store.get_run(run.id[:6])
    assert got.status is RunStatus.FINISHED
    assert got.energy_j == 10.0
    assert got.params == {"lr": 0.1}
    assert got.record == {"k": [1, 2]}
    assert got.components == [comp]
    assert [m[2] for m in store.metrics(run.id)] == [0.5, 0.7]
    assert store.samples(run.id) == [(1.0, "cpu", 10.0, 10.0)]
    data = got.to_dict()
    assert data["components"][0] == {
        "component": "cpu", "energy_j": 10.0, "energy_band_j": 4.0, "machine_energy_j": 20.0,
        "method": "model", "meter": "cpu-model", "source": "CCF",
    }
    assert data["started_at"].endswith("Z")


def test_unknown_and_ambiguous_prefix(store: SQLiteRunStore) -> None:
    store.insert_run(make_run("abcd1111"))
    store.insert_run(make_run("abcd2222"))
    with pytest.raises(RunNotFoundError, match="ambiguous"):
        store.get_run("abcd")
    with pytest.raises(RunNotFoundError, match="No run 'zzzz'"):
        store.get_run("zzzz")
    assert store.get_run("abcd2").id == "abcd2222"


def test_flush_unknown_column_and_unknown_run(store: SQLiteRunStore) -> None:
    with pytest.raises(StoreError, match="Cannot update run columns"):
        store.flush_run("x", {"host": "h"})
    with pytest.raises(RunNotFoundError):
        store.flush_run("nope", {"energy_j": 1.0})


def test_stale_heartbeat_is_marked_crashed_keeping_energy(store: SQLiteRunStore) -> None:
    old = time.time() - 3600
    run = make_run(heartbeat_at=old, started_at=old - 10, host="elsewhere", pid=1)
    store.insert_run(run)
    store.flush_run(run.id, {"energy_j": 42.0, "heartbeat_at": old})
    fresh = make_run(host="elsewhere", pid=1)
    store.insert_run(fresh)
    got = {r.id: r for r in store.list_runs()}
    assert got[run.id].status is RunStatus.CRASHED
    assert got[run.id].energy_j == 42.0
    assert got[run.id].ended_at == old
    assert got[fresh.id].status is RunStatus.RUNNING


def test_dead_local_process_is_marked_crashed(store: SQLiteRunStore) -> None:
    proc = multiprocessing.get_context("spawn").Process(target=time.sleep, args=(0,))
    proc.start()
    proc.join()
    run = make_run(pid=proc.pid, host=os.uname().nodename)
    store.insert_run(run)
    assert store.get_run(run.id).status is RunStatus.CRASHED


def test_garbage_file_is_reported_as_corrupt(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    path.write_bytes(b"this is not sqlite at all" * 100)
    with pytest.raises(StoreCorruptError, match="Move it aside"):
        SQLiteRunStore(path)


def test_foreign_sqlite_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE t (x)")
    conn.commit()
    conn.close()
    with pytest.raises(StoreCorruptError, match="not a wattwise ledger"):
        SQLiteRunStore(path)


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    store = SQLiteRunStore(path)
    store.insert_run(make_run())
    store.close()
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.commit()
    conn.close()
    with pytest.raises(SchemaVersionError, match="Upgrade wattwise"):
        SQLiteRunStore(path)


def test_project_root_walks_up_like_git(tmp_path: Path) -> None:
    (tmp_path / "a" / ".git").mkdir(parents=True)
    (tmp_path / "a" / "b" / "c").mkdir(parents=True)
    assert find_project_root(tmp_path / "a" / "b" / "c") == tmp_path / "a"
    (tmp_path / "a" / "b" / ".wattwise").mkdir()
    assert find_project_root(tmp_path / "a" / "b" / "c") == tmp_path / "a" / "b"
    assert ledger_path(None, environ={}, start=tmp_path / "a" / "b" / "c") == (
        tmp_path / "a" / "b" / ".wattwise" / "ledger.db"
    )
    assert ledger_path(None, environ={"WATTWISE_STORE": "sqlite:///x/y.db"}) == Path("x/y.db")


def _writer(path: str, n_runs: int, n_metrics: int) -> None:
    store = SQLiteRunStore(path)
    for _ in range(n_runs):
        run = make_run()
        store.insert_run(run)
        for step in range(n_metrics):
            store.flush_run(
                run.id,
                {"energy_j": float(step), "heartbeat_at": time.time()},
                metrics=[(step, "loss", 1.0 / (step + 1), time.time())],
                samples=[(float(step), "cpu", 1.0, float(step))],
            )
        store.flush_run(run.id, {"status": RunStatus.FINISHED})
    store.close()


def test_eight_processes_lose_nothing(tmp_path: Path) -> None:
    path = str(tmp_path / "ledger.db")
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(path, 5, 20)) for _ in range(8)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    store = SQLiteRunStore(path)
    runs = store.list_runs()
    assert len(runs) == 40
    assert all(r.status is RunStatus.FINISHED and r.energy_j == 19.0 for r in runs)
    assert all(len(store.metrics(r.id)) == 20 for r in runs)
    assert all(len(store.samples(r.id)) == 20 for r in runs)


def test_footprint_splits_by_status_and_skips_nested_runs() -> None:
    runs = [
        make_run(status=RunStatus.FINISHED, energy_j=100.0, co2e_g=1.0, region="FR"),
        make_run(status=RunStatus.FAILED, energy_j=50.0, co2e_g=0.5, region="FR"),
        make_run(status=RunStatus.CRASHED, energy_j=30.0, co2e_g=0.3, region="DE"),
        make_run(status=RunStatus.FINISHED, energy_j=999.0, parent_id="x"),
    ]
    fp = project_footprint(runs)
    assert fp.total.runs == 3
    assert fp.total.energy_j == 180.0
    assert fp.by_status["finished"].energy_j == 100.0
    assert fp.by_status["crashed"].runs == 1
    assert fp.by_region["DE"].energy_j == 30.0
    assert fp.not_finished_share == pytest.approx(80 / 180)


def _open_new(path: str, barrier: object) -> None:
    barrier.wait()  # type: ignore[attr-defined]
    store = SQLiteRunStore(path)
    store.insert_run(make_run())
    store.close()


def test_many_processes_creating_one_new_ledger_at_once(tmp_path: Path) -> None:
    path = str(tmp_path / "new" / "ledger.db")
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(6)
    procs = [ctx.Process(target=_open_new, args=(path, barrier)) for _ in range(6)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    assert len(SQLiteRunStore(path).list_runs()) == 6

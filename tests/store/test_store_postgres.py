"""The PostgreSQL ledger on a real throwaway server (tests/pg_support.py): what is special to it.

The shared contract (lifecycle, metrics, reuse, concurrency, reaping, migrations) runs on it
through ``wattwise.testing.store_contract`` where that suite is; these tests cover the
server's own cases: import cost, roles and read-only sessions, the password, many processes
on one server, migrations of a server ledger, a server that goes away and comes back.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import multiprocessing
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pg_support import PostgresCluster, cluster_or_skip, database_name
from wattwise.exceptions import (
    ConfigError,
    RunNotFoundError,
    SchemaVersionError,
    StoreCorruptError,
    StoreError,
)
from wattwise.store import RunRecord, RunStatus
from wattwise.store._model import ComponentEnergy
from wattwise.store._schema import MIGRATIONS, SCHEMA_VERSION
from wattwise.testing.store_contract import OLD_LEDGER, RunStoreContract

psycopg = pytest.importorskip(
    "psycopg", reason="psycopg 3 is not installed: PostgreSQL ledger tests SKIPPED "
    "(pip install -e '.[postgres]')",
)  # fmt: skip

from wattwise.store._postgres import PostgresRunStore, public_url  # noqa: E402


def _run(run_id: str | None = None, **fields: Any) -> RunRecord:
    now = fields.pop("started_at", time.time())
    return RunRecord(
        id=run_id or uuid.uuid4().hex, name=fields.pop("name", "train"),
        kind=fields.pop("kind", "run"), status=fields.pop("status", RunStatus.RUNNING),
        started_at=now, heartbeat_at=fields.pop("heartbeat_at", now),
        host=fields.pop("host", "other-host"), pid=fields.pop("pid", 1), **fields,
    )  # fmt: skip


def _tables(url: str) -> list[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1"
        ).fetchall()
    return [r[0] for r in rows]


def _dump(url: str) -> str:
    """Every row of every table of the database, as text."""
    out = []
    with psycopg.connect(url) as conn:
        for table in _tables(url):
            out += [r[0] for r in conn.execute(f'SELECT t::text FROM "{table}" AS t')]
    return "\n".join(out)


# -- import cost --------------------------------------------------------------------------


def test_psycopg_is_imported_only_for_a_postgresql_url(tmp_path: Path, pg_url: str) -> None:
    code = f"""
import sys, time
import wattwise
from wattwise.store import open_store, RunRecord, RunStatus
assert "psycopg" not in sys.modules, "import wattwise loaded psycopg"
store = open_store({str(tmp_path / "ledger.db")!r})
now = time.time()
store.insert_run(RunRecord(id="a" * 32, name="n", kind="run", status=RunStatus.RUNNING,
                           started_at=now, heartbeat_at=now, host="h", pid=1))
store.list_runs(); store.close()
import wattwise.store._postgres
assert "psycopg" not in sys.modules, "the SQLite ledger or the module loaded psycopg"
from wattwise.store._postgres import PostgresRunStore
PostgresRunStore(sys.argv[1]).list_runs()
assert "psycopg" in sys.modules
print("ok")
"""
    done = subprocess.run([sys.executable, "-c", code, pg_url], capture_output=True, text=True,
                          timeout=120, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


def test_missing_psycopg_is_one_line_saying_what_to_install() -> None:
    code = """
import sys
sys.modules["psycopg"] = None  # as if not installed
from wattwise.store._postgres import PostgresRunStore
from wattwise.exceptions import ConfigError
try:
    PostgresRunStore("postgresql://me:s3cret@db.example/ledger")
except ConfigError as err:
    print(err)
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, check=True)  # fmt: skip
    line = done.stdout.strip()
    assert "\n" not in line
    assert "pip install 'wattwise[postgres]'" in line
    assert "s3cret" not in line and "postgresql://me@db.example/ledger" in line


# -- readers never write; roles ------------------------------------------------------------


def test_reading_a_new_database_creates_nothing_and_reads_empty(pg_url: str) -> None:
    for readonly in (True, False):
        store = PostgresRunStore(pg_url, readonly=readonly)
        assert store.list_runs() == []
        assert store.count_runs() == 0
        assert store.aggregate("user") == []
        assert store.metrics("x") == [] and list(store.iter_metrics()) == []
        assert store.reuse_totals().hits == 0
        assert store.schema_version() == 0
        with pytest.raises(RunNotFoundError):
            store.get_run("abcd")
        store.close()
    with PostgresRunStore(pg_url, readonly=True) as reader, pytest.raises(
        StoreError, match="read-only"
    ):
        reader.reap()
    assert _tables(pg_url) == []
    # Reaping is a writer step: the owner's `wattwise --store URL doctor --repair` sets the
    # ledger up before anyone runs (team-ledger.md).
    with PostgresRunStore(pg_url) as owner:
        assert owner.reap() == []
        assert owner.schema_version() == SCHEMA_VERSION
    assert {"runs", "metrics", "schema_migrations"} <= set(_tables(pg_url))


def test_a_select_only_role_reads_and_its_writes_are_refused_in_one_line(
    pg_cluster: PostgresCluster, pg_url: str
) -> None:
    owner = PostgresRunStore(pg_url)
    owner.insert_run(_run("r1", user="alice"))
    owner.flush_run("r1", {"status": RunStatus.FINISHED}, metrics=[(1, "acc", 0.9, 1.0)])
    owner.close()
    db = database_name(pg_url)
    reader_url = pg_cluster.create_role(
        f"reader_{uuid.uuid4().hex[:8]}", "r3ader-pw", "GRANT SELECT ON ALL TABLES IN SCHEMA "
        "public TO {role}", database=db,
    )  # fmt: skip
    for readonly in (True, False):
        reader = PostgresRunStore(reader_url, readonly=readonly)
        assert [r.id for r in reader.list_runs()] == ["r1"]
        assert reader.metrics("r1") == [(1, "acc", 0.9, 1.0)]
        with pytest.raises(StoreError) as caught:
            reader.annotate_run("r1", "k", 1)
        text = str(caught.value)
        assert "\n" not in text and "r3ader-pw" not in text
        assert ("read-only" in text) if readonly else ("grant" in text)
        reader.close()


def test_a_writer_role_with_the_documented_grants_writes(
    pg_cluster: PostgresCluster, pg_url: str
) -> None:
    with PostgresRunStore(pg_url) as owner:
        owner.insert_run(_run("r0"))  # the owner creates the tables
    db = database_name(pg_url)
    grants = [
        "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role}",
        "GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO {role}",
    ]  # docs/how-to/team-ledger.md
    url = pg_cluster.create_role(f"writer_{uuid.uuid4().hex[:8]}", "wr1ter", *grants,
                                 database=db)  # fmt: skip
    store = PostgresRunStore(url)
    store.insert_run(_run("r1"))
    store.flush_run("r1", {"status": RunStatus.FINISHED}, metrics=[(0, "loss", 1.0, 1.0)],
                    samples=[(0.5, "cpu", 10.0, 5.0)])  # fmt: skip
    store.annotate_run("r1", "seed", 7)
    store.put_artifact("r1", "diff", b"a")
    store.put_artifact("r1", "diff", b"b")  # replaces; the trigger frees blob "a"
    assert store.get_artifact("r1", "diff") == b"b"
    assert store.get_run("r1").record["seed"] == 7
    store.close()


# -- the password ---------------------------------------------------------------------------


def test_the_password_never_reaches_the_url_errors_or_the_ledger(
    pg_cluster: PostgresCluster, pg_url: str
) -> None:
    password = pg_cluster.password
    assert password in pg_url
    store = PostgresRunStore(pg_url)
    assert password not in store.url and password not in repr(store)
    assert password not in str(store.path)
    store.insert_run(_run("r1", record={"store": store.url}))
    store.annotate_run("r1", "where", store.url)
    assert password not in _dump(pg_url)
    # Errors quote the URL without it (wrong database, wrong password, server message).
    bad_db = pg_url.replace(database_name(pg_url), "no_such_db")
    for url in (bad_db, pg_cluster.url(database_name(pg_url), password=password + "x")):
        with pytest.raises(StoreError) as caught, PostgresRunStore(url, defer=True) as bad:
            bad.list_runs()
        text = str(caught.value)
        assert password not in text and "\n" not in text
        assert text.startswith("Cannot reach the ledger postgresql://wattwise_admin@/")
    store.close()
    assert public_url("postgresql://u:p%40ss@h:5/db?sslmode=require&password=x") == (
        "postgresql://u@h:5/db?sslmode=require"
    )


def test_a_url_without_a_database_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="names no database"):
        PostgresRunStore("postgresql://u:secret@localhost", defer=True)


# -- schema ---------------------------------------------------------------------------------


def test_an_older_server_ledger_reads_then_migrates_on_the_first_write(pg_url: str) -> None:
    """A ledger made by migrations 1-2 (artifact content inline) reaches the current schema."""
    with psycopg.connect(pg_url, autocommit=True) as conn:
        apply_range(conn, 2)
        conn.execute(
            "INSERT INTO runs (id, name, kind, status, started_at, heartbeat_at, host, pid, "
            "energy_j, tags) VALUES ('old1', 'old', 'trial', 'finished', 1, 2, 'h', 1, 5, "
            "'[\"x\"]')"
        )
        for run_id in ("old1",):
            conn.execute(
                "INSERT INTO artifacts VALUES (%s, 'diff', %s, 3, %s, 1)",
                (run_id, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
                 b"abc"),
            )  # fmt: skip
    reader = PostgresRunStore(pg_url, readonly=True)
    assert reader.schema_version() == 2
    [old] = reader.list_runs()
    assert (old.id, old.energy_j, old.user, old.role) == ("old1", 5.0, None, None)
    [row] = reader.aggregate("user")
    assert (row.group, row.role, row.runs) == (None, "tuning", 1)  # inferred from its kind
    reader.close()
    writer = PostgresRunStore(pg_url)
    writer.insert_run(_run("new1", user="bob", role="final"))
    assert writer.schema_version() == SCHEMA_VERSION
    assert writer.get_artifact("old1", "diff") == b"abc"  # moved into blobs by migration 3
    assert {r.id: r.user for r in writer.list_runs()} == {"old1": None, "new1": "bob"}
    with psycopg.connect(pg_url) as conn:
        versions = [r[0] for r in conn.execute("SELECT version FROM schema_migrations "
                                                "ORDER BY 1")]  # fmt: skip
    assert versions == list(range(1, SCHEMA_VERSION + 1))
    writer.close()


def test_a_newer_or_foreign_database_is_refused_in_one_line(pg_cluster: PostgresCluster) -> None:
    newer = pg_cluster.create_database()
    with PostgresRunStore(newer) as store:
        store.insert_run(_run("r1"))
    with psycopg.connect(newer, autocommit=True) as conn:
        conn.execute("INSERT INTO schema_migrations VALUES (%s, 'future', 0)",
                     (SCHEMA_VERSION + 1,))  # fmt: skip
    for op in (lambda s: s.list_runs(), lambda s: s.insert_run(_run())):
        store = PostgresRunStore(newer, defer=True)
        with pytest.raises(SchemaVersionError, match="pip install -U wattwise") as caught:
            op(store)
        store.close()
        assert "\n" not in str(caught.value)
    foreign = pg_cluster.create_database()
    with psycopg.connect(foreign, autocommit=True) as conn:
        conn.execute("CREATE TABLE runs (id int)")
    with pytest.raises(StoreCorruptError, match="not a wattwise ledger"), PostgresRunStore(
        foreign
    ) as store:
        store.insert_run(_run())
    with psycopg.connect(foreign) as conn:
        assert conn.execute("SELECT count(*) FROM runs").fetchone() == (0,)
    for url in (newer, foreign):
        pg_cluster.drop_database(database_name(url))


# -- many processes -------------------------------------------------------------------------

_WRITERS = 16
_RUNS_EACH = 4
_METRICS_EACH = 10


def _writer(url: str, index: int, shared_run: str, barrier: Any) -> None:
    store = PostgresRunStore(url, defer=True)
    barrier.wait()  # all 16 hit an empty database at once: one of them migrates it
    for n in range(_RUNS_EACH):
        run_id = f"w{index:02d}-{n}"
        store.insert_run(_run(run_id, user=f"user{index % 4}", components=[
            ComponentEnergy("cpu", 1.0, 2.0, None, "model", "cpu-model", "test")]))
        for step in range(_METRICS_EACH):
            store.flush_run(run_id, {"heartbeat_at": time.time(), "energy_j": float(step)},
                            metrics=[(step, "loss", 1.0 / (step + 1), time.time())],
                            samples=[(float(step), "cpu", 3.0, float(step))])  # fmt: skip
        store.flush_run(run_id, {"status": RunStatus.FINISHED, "energy_j": 10.0})
        store.annotate_run(shared_run, "workers", index, append=True)
        store.flush_run(shared_run, {}, metrics=[(index, "seen", float(n), time.time())])
    store.close()


@pytest.mark.slow
def test_sixteen_writer_processes_lose_no_run_and_no_metric_row(pg_url: str) -> None:
    ctx = multiprocessing.get_context("spawn")
    shared = PostgresRunStore(pg_url, defer=True)
    barrier = ctx.Barrier(_WRITERS + 1)
    procs = [ctx.Process(target=_writer, args=(pg_url, i, "shared", barrier))
             for i in range(_WRITERS)]  # fmt: skip
    for proc in procs:
        proc.start()
    shared.insert_run(_run("shared", user="coordinator"))  # races the migration too
    barrier.wait()
    for proc in procs:
        proc.join(timeout=300)
    assert [p.exitcode for p in procs] == [0] * _WRITERS
    runs = shared.list_runs()
    assert len(runs) == _WRITERS * _RUNS_EACH + 1
    assert shared.count_runs(status="finished") == _WRITERS * _RUNS_EACH
    assert all(r.energy_j == 10.0 for r in runs if r.id != "shared")
    points = list(shared.iter_metrics())
    assert len(points) == _WRITERS * _RUNS_EACH * (_METRICS_EACH + 1)
    assert len(shared.metrics("shared")) == _WRITERS * _RUNS_EACH
    assert sorted(shared.get_run("shared").record["workers"]) == sorted(
        list(range(_WRITERS)) * _RUNS_EACH
    )
    assert len(shared.samples("w00-0")) == _METRICS_EACH
    by_user = {row.group: row.runs for row in shared.aggregate("user") if row.group}
    assert by_user == {"coordinator": 1, **{f"user{i}": _WRITERS // 4 * _RUNS_EACH
                                            for i in range(4)}}  # fmt: skip
    shared.close()


def _reaper(url: str, barrier: Any, out: Any) -> None:
    store = PostgresRunStore(url)
    barrier.wait()
    out.put(store.reap())
    store.close()


@pytest.mark.slow
def test_a_dead_run_is_reaped_by_exactly_one_of_many_reapers(pg_url: str) -> None:
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    import socket

    store = PostgresRunStore(pg_url)
    dead = _run("dead", host=socket.gethostname(), pid=int(gone.stdout), heartbeat_at=1.0)
    store.insert_run(dead)
    store.insert_run(_run("alive", host=socket.gethostname(), pid=os.getpid()))
    assert store.get_run("dead").status is RunStatus.CRASHED  # shown, not written
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT status FROM runs WHERE id = 'dead'").fetchone() == (
            "running",
        )
    ctx = multiprocessing.get_context("spawn")
    barrier, out = ctx.Barrier(6), ctx.Queue()
    procs = [ctx.Process(target=_reaper, args=(pg_url, barrier, out)) for _ in range(6)]
    for proc in procs:
        proc.start()
    results = [out.get(timeout=120) for _ in procs]
    for proc in procs:
        proc.join(timeout=60)
    assert sorted(results, key=len) == [[]] * 5 + [["dead"]]
    run = store.get_run("dead")
    assert run.status is RunStatus.CRASHED and run.ended_at == 1.0
    assert len([n for n in run.record.get("notes", []) if "marked crashed" in n]) == 1
    assert store.get_run("alive").status is RunStatus.RUNNING
    store.close()


# -- issue 8: a server that goes away -------------------------------------------------------


@pytest.fixture
def own_cluster() -> Any:
    """A cluster this test alone stops and starts again."""
    with cluster_or_skip() as cluster:
        yield cluster


def test_a_run_spools_while_the_server_is_down_and_merges_once_it_is_back(
    own_cluster: PostgresCluster, tmp_path: Path
) -> None:
    from wattwise.store._spool import merge_spools, pending_spools
    from wattwise.tracking._writer import LedgerWriter

    url = own_cluster.create_database()
    store = PostgresRunStore(url, start=tmp_path)
    assert store.path.parent == tmp_path / ".wattwise"
    warnings: list[tuple[str, str]] = []
    writer = LedgerWriter("r1", store, owned=True, strict=False,
                          warn=lambda kind, text: warnings.append((kind, text)))  # fmt: skip
    writer.insert(_run("r1", user="alice"))
    writer.write({"heartbeat_at": time.time(), "energy_j": 1.0, "record": {}}, [], [],
                 [(0, "loss", 1.0, time.time())])  # fmt: skip
    own_cluster.stop_server()
    started = time.monotonic()
    writer.write({"heartbeat_at": time.time(), "energy_j": 2.0, "record": {}}, [], [],
                 [(1, "loss", 0.5, time.time())])  # fmt: skip
    writer.write({"heartbeat_at": time.time() + 1, "energy_j": 3.0, "record": {"n": 3},
                  "status": RunStatus.FINISHED}, [], [], [(2, "loss", 0.25, time.time())],
                 final=True)  # fmt: skip
    assert time.monotonic() - started < 30  # the job is not held up by the dead server
    assert writer.spooled_to is not None and writer.spooled_to.exists()
    assert writer.spooled_to.parent == tmp_path / ".wattwise" / "spool"
    assert not writer.lost
    assert own_cluster.password not in writer.spooled_to.read_text()
    assert all(own_cluster.password not in text for _, text in warnings)
    writer.close()
    own_cluster.restart()
    later = PostgresRunStore(url, start=tmp_path)
    assert len(pending_spools(later.path)) == 1
    merged = merge_spools(later)  # what the next writer's housekeeping does
    assert len(merged) == 1
    run = later.get_run("r1")
    assert (run.status, run.energy_j) == (RunStatus.FINISHED, 3.0)
    assert [m[2] for m in later.metrics("r1")] == [1.0, 0.5, 0.25]
    assert merge_spools(later) == [] and len(later.metrics("r1")) == 3  # merged once
    assert own_cluster.password not in _dump(url)
    later.close()


def test_a_store_reconnects_after_the_server_restarts(own_cluster: PostgresCluster) -> None:
    url = own_cluster.create_database()
    store = PostgresRunStore(url)
    store.insert_run(_run("r1"))
    own_cluster.stop_server()
    with pytest.raises(StoreError, match="Cannot reach the ledger") as caught:
        store.flush_run("r1", {"energy_j": 1.0})
    assert "\n" not in str(caught.value) and own_cluster.password not in str(caught.value)
    own_cluster.restart()
    store.flush_run("r1", {"energy_j": 2.0})
    assert store.get_run("r1").energy_j == 2.0
    store.close()


# -- aggregation and paging match the records -----------------------------------------------


def test_aggregate_and_paging_agree_with_the_records(pg_url: str) -> None:
    store = PostgresRunStore(pg_url)
    jan, feb = 1767225600.0, 1769904000.0  # 2026-01-01, 2026-02-01 UTC
    specs = [
        ("a1", "alice", jan, ["x", "y"], "final", RunStatus.FINISHED, 10.0),
        ("a2", "alice", feb, [], None, RunStatus.FINISHED, 20.0),
        ("b1", "bob", feb + 5, ["x"], "cache-fill", RunStatus.FINISHED, 40.0),
        ("b2", "bob", feb + 9, [], "trial", RunStatus.FAILED, 80.0),
        ("b3", "bob", feb + 10, [], "final", RunStatus.RUNNING, 160.0),  # tracker gone
    ]
    for run_id, user, start, tags, role, status, energy in specs:
        store.insert_run(_run(run_id, user=user, started_at=start, heartbeat_at=start,
                              tags=tags, role=role, status=status, energy_j=energy))  # fmt: skip
    store.insert_run(_run("n1", parent_id="a1", energy_j=999.0, started_at=jan + 1,
                          status=RunStatus.FINISHED))  # fmt: skip
    rows = store.aggregate("user")
    assert {(r.group, r.role, r.status): (r.runs, r.energy_j) for r in rows} == {
        ("alice", "final", "finished"): (2, 30.0),
        ("bob", "cache-fill", "finished"): (1, 40.0),
        ("bob", "trial", "failed"): (1, 80.0),
        ("bob", "final", "crashed"): (1, 160.0),  # as readers see it; nothing written
    }
    months: dict[str | None, float] = {}
    for r in store.aggregate("month"):
        if r.status == "finished":
            months[r.group] = months.get(r.group, 0.0) + r.energy_j
    assert months == {"2026-01": 10.0, "2026-02": 60.0}
    tags: dict[str | None, float] = {}
    for r in store.aggregate("tag"):
        tags[r.group] = tags.get(r.group, 0.0) + r.energy_j
    assert tags == {"x": 50.0, "y": 10.0, None: 260.0}
    assert sum(r.energy_j for r in store.aggregate("none", top_level=False)) == 1309.0
    newest = store.list_runs(top_level=True, limit=2, newest_first=True)
    assert [r.id for r in newest] == ["b3", "b2"]
    assert [r.id for r in store.list_runs(top_level=True, limit=2, offset=2)] == ["a2", "b1"]
    assert store.count_runs(user="bob") == 3
    assert [r.id for r in store.list_runs(status="crashed")] == ["b3"]
    assert store.count_runs(status="crashed") == 1
    store.insert_run(_run("abcd1"))
    store.insert_run(_run("abcd2"))
    assert store.get_run("abcd1").id == "abcd1"
    with pytest.raises(RunNotFoundError, match="ambiguous"):
        store.get_run("abcd")
    with pytest.raises(RunNotFoundError, match="No run 'a1f'"):
        store.get_run("a1f")  # under 4 characters: an exact id only
    store.close()


def test_many_metric_points_stream_in_batches(pg_url: str) -> None:
    store = PostgresRunStore(pg_url)
    for run_id in ("m1", "m2"):
        store.insert_run(_run(run_id))
    points = [(i, "loss", float(i), float(i)) for i in range(12_345)]
    store.flush_run("m2", {}, metrics=points)
    store.flush_run("m1", {}, metrics=points[:10])
    streamed = list(store.iter_metrics())
    assert len(streamed) == 12_355
    assert [p[0] for p in streamed[:10]] == ["m1"] * 10
    assert [p[1] for p in streamed if p[0] == "m2"] == list(range(12_345))
    assert len(list(store.iter_metrics(["m1"]))) == 10
    assert list(store.iter_metrics([])) == []
    store.close()


@pytest.mark.slow
def test_spooled_records_merge_into_the_server_once_even_with_many_mergers(
    pg_url: str, tmp_path: Path
) -> None:
    from wattwise.store._spool import Spool, read_spool

    store = PostgresRunStore(pg_url, start=tmp_path)
    run = _run("sp1")
    header_run = {**run.__dict__, "status": "running"}
    header_run.pop("components")
    spool = Spool(store.path, "sp1", header_run)
    path = spool.append({"op": "insert"}, reason="test")
    spool.append({"op": "flush", "final": True, "fields": {"heartbeat_at": time.time(),
                  "status": "finished", "energy_j": 4.0}, "components": [], "samples": [],
                  "metrics": [[0, "acc", 0.5, 1.0]]}, reason="test")  # fmt: skip
    spool.close()
    spooled = read_spool(path)
    assert spooled is not None
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    procs = [ctx.Process(target=_merge_one, args=(pg_url, str(path), out)) for _ in range(6)]
    for proc in procs:
        proc.start()
    results = sorted(out.get(timeout=120) for _ in procs)
    for proc in procs:
        proc.join(timeout=60)
    assert results == [0] * 5 + [2]
    got = store.get_run("sp1")
    assert (got.status, got.energy_j) == (RunStatus.FINISHED, 4.0)
    assert store.metrics("sp1") == [(0, "acc", 0.5, 1.0)]
    assert len(got.record["spooled"]) == 1
    store.close()


def _merge_one(url: str, path: str, out: Any) -> None:
    from wattwise.store._spool import read_spool

    spooled = read_spool(Path(path))
    assert spooled is not None
    store = PostgresRunStore(url)
    out.put(store.merge_spooled(spooled))
    store.close()


def test_json_columns_round_trip(pg_url: str) -> None:
    store = PostgresRunStore(pg_url)
    record = {"command": ["python", "train.py"], "nested": {"ü": [1, 2.5, None]}}
    store.insert_run(_run("j1", params={"lr": 0.1}, record=record, tags=["a"]))
    got = store.get_run("j1")
    assert (got.params, got.record, got.tags) == ({"lr": 0.1}, record, ["a"])
    assert json.loads(json.dumps(got.to_dict()))["params"] == {"lr": 0.1}
    store.close()


# -- the shared contract suite ----------------------------------------------------------------


class TestPostgresStore(RunStoreContract):
    """``wattwise.testing.store_contract`` on a real server."""

    can_block = True
    cluster: PostgresCluster

    @pytest.fixture(autouse=True)
    def _server(self, pg_cluster: PostgresCluster, monkeypatch: pytest.MonkeyPatch) -> None:
        # store.url holds no password: get_store(store.url) here and in the writer
        # processes authenticate the way team-ledger.md says, through libpq's environment.
        monkeypatch.setenv("PGPASSWORD", pg_cluster.password)
        self.cluster = pg_cluster

    @pytest.fixture
    def store_url(self, pg_url: str) -> str:
        return pg_url

    def old_ledger_url(self, tmp_path: Path) -> str | None:
        """A server ledger at schema 2 (the release before blobs and user/role) with
        :data:`OLD_LEDGER`, built by the migration list's own first two steps."""
        url = self.cluster.create_database()
        start = OLD_LEDGER["start"]
        with psycopg.connect(url, autocommit=True) as conn, conn.transaction():
            apply_range(conn, 2)
            for i, run in enumerate(OLD_LEDGER["runs"]):
                at = start + 60 * i
                conn.execute(
                    "INSERT INTO runs (id, name, kind, status, study_id, started_at, ended_at, "
                    "heartbeat_at, duration_s, host, pid, energy_j, co2e_g) "
                    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, 30, 'v01-host', 1000, %s, %s)",
                    (run["id"], run["name"], run["kind"], run["status"], run["study_id"], at,
                     at + 30, at + 30, run["energy_j"], run["co2e_g"]),
                )  # fmt: skip
                for step, key, value, logged_at in run["metrics"]:
                    conn.execute(
                        "INSERT INTO metrics (run_id, step, key, value, logged_at) "
                        "VALUES (%s, %s, %s, %s, %s)", (run["id"], step, key, value, logged_at),
                    )  # fmt: skip
            diff = OLD_LEDGER["diff"]
            conn.execute(
                "INSERT INTO artifacts VALUES (%s, 'git-diff', %s, %s, %s, %s)",
                (OLD_LEDGER["runs"][0]["id"], hashlib.sha256(diff).hexdigest(), len(diff),
                 diff, start),
            )  # fmt: skip
            conn.execute(
                "INSERT INTO reuse (at, cache_key, function, producer_run_id, consumer_run_id, "
                "energy_avoided_j, co2e_avoided_g, duration_avoided_s, method, basis, "
                "cache_url) VALUES (%s, %s, 'm:f', %s, %s, %s, 1, 10, 'measured', 'FR', "
                "'file:///c')",
                (start + 200, "ab" * 32, OLD_LEDGER["runs"][0]["id"],
                 OLD_LEDGER["runs"][1]["id"], OLD_LEDGER["reuse_energy_j"]),
            )  # fmt: skip
        return url

    @contextlib.contextmanager
    def blocked(self, store_url: str) -> Iterator[None]:
        """Another session holds an exclusive lock on the runs table."""
        with psycopg.connect(store_url) as holder:
            holder.execute("LOCK TABLE runs IN ACCESS EXCLUSIVE MODE")
            try:
                yield
            finally:
                holder.rollback()


def apply_range(conn: Any, version: int) -> None:
    """Apply the migration list's first ``version`` steps and record them, as that release
    would have left the ledger."""
    conn.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, "
                 "name TEXT NOT NULL, applied_at DOUBLE PRECISION NOT NULL)")  # fmt: skip
    for migration in MIGRATIONS[:version]:
        for statement in migration.statements("postgresql"):
            conn.execute(statement)
        conn.execute("INSERT INTO schema_migrations VALUES (%s, %s, 0)",
                     (migration.version, migration.name))  # fmt: skip


# -- end to end through the command line ------------------------------------------------------


def test_the_command_line_on_a_server_ledger(
    pg_cluster: PostgresCluster, pg_url: str, isolated_project: Path
) -> None:
    """The owner sets the ledger up, a run's child logs to it, the team's views read it."""
    password = pg_cluster.password
    env = {**os.environ, "WATTWISE_STORE": pg_url, "PGPASSWORD": password}

    def wattwise(*args: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([sys.executable, "-m", "wattwise", *args], env=env, text=True,
                              capture_output=True, timeout=300, check=False)  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert password not in done.stdout + done.stderr
        return done

    wattwise("doctor", "--repair")
    assert {"runs", "schema_migrations"} <= set(_tables(pg_url))
    child = "import wattwise; wattwise.log(step=0, acc=0.5)"
    wattwise("run", "--name", "e2e", "--tag", "demo", "--", sys.executable, "-c", child)
    [row] = json.loads(wattwise("runs", "--json").stdout)
    assert (row["name"], row["status"]) == ("e2e", "finished")
    with PostgresRunStore(pg_url, readonly=True) as store:
        run = store.get_run(row["id"])
        assert store.metrics(run.id)[0][1:3] == ("acc", 0.5)  # the child wrote it directly
        assert run.user and run.energy_j > 0
    by_user = json.loads(wattwise("footprint", "--by", "user", "--json").stdout)
    assert [(g["group"], g["total"]["runs"]) for g in by_user["groups"]] == [(run.user, 1)]
    assert not list((isolated_project / ".wattwise").glob("spool/*.jsonl"))  # nothing spooled
    assert password not in _dump(pg_url)

"""Schema 5: a run's job in an indexed column, who saved each cache hit, old ledgers read
in place and migrated, spooled and imported runs indexed by their job."""

from __future__ import annotations

import dataclasses
import io
import sqlite3
from pathlib import Path

import pytest

from wattwise.store import (
    SCHEMA_VERSION,
    ReuseEvent,
    RunStatus,
    get_store,
    login_name,
)
from wattwise.store._schema import MIGRATIONS
from wattwise.store._transfer import export_ledger, import_ledger
from wattwise.testing.store_contract import make_run


def _ledger_at(path: Path, version: int) -> None:
    """An SQLite ledger at ``version`` holding one run (user "ana") and one cache hit."""
    conn = sqlite3.connect(path)
    for migration in MIGRATIONS[:version]:
        for statement in migration.sqlite:
            conn.execute(statement)
    conn.execute(f"PRAGMA user_version = {version}")
    user = ', "user"' if version >= 4 else ""
    conn.execute(
        "INSERT INTO runs (id, name, kind, status, started_at, heartbeat_at, host, pid, "
        f"energy_j, record{user}) VALUES ('r4aaaaaa', 'old', 'python', 'finished', 1e9, 1e9, "
        f"""'h', 1, 7.0, '{{"job": {{"id": "j1"}}}}'{", 'ana'" if user else ""})"""
    )
    conn.execute(
        "INSERT INTO reuse (at, cache_key, function, producer_run_id, consumer_run_id, "
        "energy_avoided_j, co2e_avoided_g, duration_avoided_s, method, basis, cache_url) "
        "VALUES (1e9, 'k', 'm:f', NULL, 'r4aaaaaa', 5.0, 0.5, 1.0, 'measured', 'FR', 'file:///c')"
    )
    conn.commit()
    conn.close()


@pytest.mark.parametrize("version", [3, 4])
def test_an_older_ledger_is_read_in_place_then_migrated(tmp_path: Path, version: int) -> None:
    path = tmp_path / f"v{version}.db"
    _ledger_at(path, version)
    reader = get_store(str(path), readonly=True)
    assert reader.schema_version() == version
    run = reader.get_run("r4aaaaaa")
    assert run.job_id == "j1"  # read from the record
    assert reader.list_runs(job_id="j1") == []  # not indexed before schema 5
    assert [e.user for e in reader.reuse_events()] == [None]
    assert list(reader.reuse_by_user()) == [None]
    files = [row[2] for row in reader._conn.execute("PRAGMA database_list")]
    assert str(path) in files  # read in place through views, not copied
    writer = get_store(str(path))
    writer.insert_run(make_run(name="new"))
    assert writer.schema_version() == SCHEMA_VERSION
    # Hits recorded before schema 5 are booked to their consuming run's user.
    expected = "ana" if version >= 4 else None
    assert [e.user for e in writer.reuse_events()] == [expected]
    writer.close()
    fresh = get_store(str(path), readonly=True)
    assert sorted(r.name for r in fresh.list_runs()) == ["new", "old"]
    assert {u: t.energy_j for u, t in fresh.reuse_by_user().items()} == {expected: 5.0}
    columns = {row[1] for row in fresh._conn.execute("PRAGMA table_info(runs)")}
    assert "job_id" in columns
    fresh.close()
    reader.close()


@pytest.mark.parametrize("backend", ["sqlite", "memory"])
def test_a_spooled_run_is_indexed_by_its_job(tmp_path: Path, backend: str) -> None:
    from wattwise.store import Spool, read_spool

    store = get_store(str(tmp_path / "l.db") if backend == "sqlite" else "memory://")
    run = make_run()
    run.record["job"] = {"id": "job-spooled", "rank": 0}
    spool = Spool(store.path, run.id, dataclasses.asdict(run))
    path = spool.append({"fields": {"energy_j": 1.0}}, reason="ledger locked")
    spool.close()
    spooled = read_spool(path)
    assert spooled is not None
    assert store.merge_spooled(spooled) == 1
    path.unlink()
    assert [r.id for r in store.list_runs(job_id="job-spooled")] == [run.id]
    assert store.get_run(run.id).user == login_name()
    store.close()


@pytest.mark.parametrize("target", ["sqlite", "memory"])
def test_an_export_imported_elsewhere_keeps_jobs_and_savers(tmp_path: Path, target: str) -> None:
    source = get_store(str(tmp_path / "a.db"))
    run = make_run(user="ana")
    run.record["job"] = {"id": "job-x"}
    source.insert_run(run)
    source.add_reuse(ReuseEvent(1.0, "k" * 64, "m:f", None, run.id, 9.0, 1.0, 2.0,
                                "measured", "FR", "file:///c"))  # fmt: skip
    buffer = io.StringIO()
    export_ledger(source, buffer)
    source.close()
    text = buffer.getvalue()
    assert '"job_id"' not in text  # derived from the record, not exported
    url = str(tmp_path / "b.db") if target == "sqlite" else "memory://"
    dest = get_store(url)
    first = import_ledger(dest, text.splitlines())
    again = import_ledger(dest, text.splitlines())
    assert (first.runs_added, first.reuse_added) == (1, 1)
    assert (again.runs_added, again.reuse_added, again.reuse_present) == (0, 0, 1)
    assert [r.id for r in dest.list_runs(job_id="job-x")] == [run.id]
    assert [e.user for e in dest.reuse_events()] == ["ana"]
    dest.close()


def test_an_export_without_savers_matches_hits_already_there(tmp_path: Path) -> None:
    """A hit exported before schema 5 (no ``user``) is the same hit as its migrated copy."""
    store = get_store(str(tmp_path / "l.db"))
    run = make_run(user="ana")
    store.insert_run(run)
    store.add_reuse(ReuseEvent(1.0, "k" * 64, "m:f", None, run.id, 9.0, 1.0, 2.0,
                               "measured", "FR", "file:///c"))  # fmt: skip
    buffer = io.StringIO()
    export_ledger(store, buffer)
    old_style = buffer.getvalue().replace(',"user":"ana"}', "}")
    assert '"user":"ana"}' not in old_style.split("\n", 2)[1].split('"reuse"')[1]
    result = import_ledger(store, old_style.splitlines())
    assert (result.reuse_added, result.reuse_present) == (0, 1)
    store.close()


def test_footprint_by_user_splits_what_reuse_saved(tmp_path: Path) -> None:
    import json
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "cli"))
    from cli_support import call

    from wattwise.store import footprint_by, open_store

    store = open_store()
    runs = {}
    for user in ("ana", "bo"):
        run = make_run(user=user, status=RunStatus.FINISHED)
        store.insert_run(run)
        store.flush_run(run.id, {"energy_j": 100.0, "heartbeat_at": run.started_at})
        runs[user] = run
    for energy in (30.0, 12.0):
        store.add_reuse(ReuseEvent(1.0, "k" * 64, "m:f", None, runs["ana"].id, energy, 1.0,
                                   2.0, "measured", "FR", "file:///c"))  # fmt: skip
    store.add_reuse(ReuseEvent(2.0, "k" * 64, "m:f", None, None, 5.0, 0.5, 1.0, "measured",
                               "FR", "file:///c"))  # fmt: skip
    groups = {g.group: g for g in footprint_by(store, "user")}
    store.close()
    assert set(groups) == {"ana", "bo", None}
    saved = {u: (g.saved_by_reuse.hits, g.saved_by_reuse.energy_j)
             for u, g in groups.items() if g.saved_by_reuse is not None}  # fmt: skip
    assert saved == {"ana": (2, 42.0), "bo": (0, 0.0), None: (1, 5.0)}
    assert groups[None].total.runs == 0  # hits outside any run: saved, no runs
    table = call("footprint", "--by", "user")
    assert table.code == 0, table.err
    header, *rows = table.out.splitlines()
    assert header.rstrip().endswith("SAVED BY REUSE")
    ana = next(r for r in rows if r.startswith("ana "))
    assert "42" in ana and "(2 hits)" in ana
    data = json.loads(call("footprint", "--by", "user", "--json").out)
    by_user = {g["group"]: g["saved_by_reuse"]["energy_j"] for g in data["groups"]}
    assert by_user == {"ana": 42.0, "bo": 0.0, None: 5.0}
    hosts = json.loads(call("footprint", "--by", "host", "--json").out)
    assert all("saved_by_reuse" not in g for g in hosts["groups"])

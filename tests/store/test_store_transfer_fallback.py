"""``export_ledger``'s fallback (the store's public API) writes the rows its fast path writes.

An SQLite ledger is exported by reading its tables (``_SQLiteRows``: every column as stored);
any other backend through the store's public API (``_ApiRows``): the memory store and the
PostgreSQL ledger, the one a team exports. The same writes are made to an SQLite ledger and
to one of those, then both are exported and compared line by line. The one documented
difference: the API hands annotations back merged into the run's record, so the fallback
exports them that way (an empty ``annotations`` list); the fast path's are folded into its
record the same way before comparing.

Not covered, because the two differ there: a ``running`` run whose process is gone. The API
gives it as a reader judges it (``crashed``, ``ended_at`` its last heartbeat, a liveness
note in its record), so the fallback exports that, where the fast path exports the row as
stored. The running run here is this live process's, which every reader judges running.
"""

from __future__ import annotations

import io
import json
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from wattwise.store import ComponentEnergy, ReuseEvent, RunRecord, RunStatus, get_store
from wattwise.store._base import BaseRunStore
from wattwise.store._sqlite import SQLiteRunStore
from wattwise.store._transfer import _ApiRows, _reader_for, _SQLiteRows, export_ledger

T0 = 1_760_000_000.0


def _id(n: int) -> str:
    return f"{n:032x}"


def _fill(store: BaseRunStore, now: float) -> None:
    """The same ledger in any backend: nested runs, a study, every status a run keeps, a
    running run of this live process (its heartbeat ``now``), metrics, samples, annotations,
    shared and empty artifacts, cache hits inside and outside its runs."""
    cpu = ComponentEnergy(
        component="cpu", energy_j=123.456789, machine_energy_j=300.1, band_j=None,
        method="model", meter="cpu-model", source="row 7 of the table",
        info={"tdp_w": 65, "nested": {"a": [1, 2.5, None]}},
    )  # fmt: skip
    gpu = ComponentEnergy(
        component="gpu", energy_j=1e-9, machine_energy_j=2.0, band_j=0.1, method="counter",
        meter="gpu-nvml", source="nvml", info={},
    )  # fmt: skip
    specs: list[dict[str, Any]] = [
        {"n": 1, "name": "alpha", "status": RunStatus.FINISHED, "user": "ana", "role": "final",
         "record": {"job": {"id": "job-9", "array": 3}}},
        {"n": 2, "name": "nested", "status": RunStatus.FINISHED, "parent_id": _id(1)},
        {"n": 3, "name": "study", "status": RunStatus.FINISHED, "kind": "study"},
        {"n": 4, "name": "trial", "status": RunStatus.FAILED, "kind": "trial",
         "study_id": _id(3), "at": T0 + 450},  # same start as run 5: the tie is by id
        {"n": 5, "name": "é ü \x1b[31m", "status": RunStatus.CRASHED, "at": T0 + 450},
        {"n": 6, "name": "live", "status": RunStatus.RUNNING, "host": socket.gethostname(),
         "pid": os.getpid(), "heartbeat": now},  # judged alive by any reader
    ]  # fmt: skip
    for spec in reversed(specs):  # written newest first: the export orders them itself
        at = spec.get("at", T0 + 100 * spec["n"])
        run_id = _id(spec["n"])
        store.insert_run(RunRecord(
            id=run_id, name=spec["name"], kind=spec.get("kind", "python"),
            status=RunStatus.RUNNING, started_at=at, heartbeat_at=at,
            host=spec.get("host", "hostA"), pid=spec.get("pid", 4242),
            parent_id=spec.get("parent_id"), study_id=spec.get("study_id"), region="FR",
            tags=["x", "é ü"], params={"lr": 0.1, "layers": [1, 2]},
            record={"intensity": {"g_per_kwh": 31.0}, "text": "line\nbreak",
                    **spec.get("record", {})},
            user=spec.get("user"), role=spec.get("role"), components=[cpu, gpu],
        ))  # fmt: skip
        fields: dict[str, Any] = {"status": spec["status"],
                                  "heartbeat_at": spec.get("heartbeat", at + 60)}
        if spec["status"] is not RunStatus.RUNNING:
            fields |= {"ended_at": at + 60, "duration_s": 60.0, "energy_j": 0.1 + 0.2,
                       "energy_band_j": 1 / 3, "co2e_g": 2.5e-7, "exit_code": 3}
        store.flush_run(
            run_id, fields,
            samples=[(0.5 * i, "cpu", 10.0 + i, 5.0 * i) for i in range(4)],
            metrics=[(i if i % 2 else None, f"loss{i % 2}", 1.0 / (i + 1), at + i)
                     for i in range(5)],
        )  # fmt: skip
    store.annotate_run(_id(1), "seeds", {"python": 1})
    store.annotate_run(_id(1), "notes", "first", append=True)
    store.annotate_run(_id(1), "notes", "second", append=True)
    store.annotate_run(_id(4), "seeds", {"numpy": 2})
    store.put_artifact(_id(1), "git.diff", b"diff --git a b\n\x00\xff", created_at=T0 + 1)
    store.put_artifact(_id(4), "git.diff", b"diff --git a b\n\x00\xff", created_at=T0 + 2)
    store.put_artifact(_id(4), "empty", b"", created_at=T0 + 3)
    for consumer in (_id(4), _id(6), None, "0123456789abcdef-elsewhere"):
        store.add_reuse(ReuseEvent(
            at=T0 + 5, cache_key="ab" * 32, function="m:f", producer_run_id=_id(1),
            consumer_run_id=consumer, energy_avoided_j=12.5, co2e_avoided_g=0.1,
            duration_avoided_s=3.0, method="measured", basis="FR 31 g/kWh", cache_url="/c",
        ))  # fmt: skip


def _export(store: BaseRunStore) -> list[dict[str, Any]]:
    out = io.StringIO()
    summary = export_ledger(store, out)
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert summary.runs == lines[0]["runs"] == 6
    return lines


def _folded(line: dict[str, Any]) -> dict[str, Any]:
    """A fast-path run line with its annotations merged into the record, as the API reads
    them: a value set replaces the key, appended values make a list."""
    line = json.loads(json.dumps(line))
    record = line["run"]["record"]
    for note in line["annotations"]:
        if note["append"]:
            if not isinstance(record.get(note["key"]), list):
                record[note["key"]] = []
            record[note["key"]].append(note["value"])
        else:
            record[note["key"]] = note["value"]
    line["annotations"] = []
    return line


@pytest.fixture(params=["memory", "postgresql"])
def api_store(request: pytest.FixtureRequest) -> Iterator[BaseRunStore]:
    """A real backend that has no fast path: the memory store, or a PostgreSQL ledger."""
    if request.param == "memory":
        url = f"memory://fallback-{time.time_ns()}"
    else:
        pytest.importorskip("psycopg", reason="psycopg 3 is not installed: SKIPPED")
        url = request.getfixturevalue("pg_url")
    store = get_store(url)
    try:
        yield store
    finally:
        store.close()


def test_the_fallback_exports_the_rows_the_fast_path_exports(
    tmp_path: Path, api_store: BaseRunStore
) -> None:
    sqlite = SQLiteRunStore(tmp_path / "ledger.db")
    try:
        assert isinstance(_reader_for(sqlite), _SQLiteRows)
        assert isinstance(_reader_for(api_store), _ApiRows)  # the path under test
        now = time.time()
        _fill(sqlite, now)
        _fill(api_store, now)
        fast, fallback = _export(sqlite), _export(api_store)
    finally:
        sqlite.close()
    skip = {"exported_at", "source"}
    assert {k: v for k, v in fast[0].items() if k not in skip} == {
        k: v for k, v in fallback[0].items() if k not in skip
    }
    assert [line.get("type") for line in fast[1:]] == ["run"] * 6 + ["reuse"] * 2
    # Oldest first, a tie in start time broken by id, in both.
    assert [line["run"]["id"] for line in fast[1:7]] == [_id(n) for n in range(1, 7)]
    assert len(fallback) == len(fast)
    for mine, theirs in zip(fast[1:], fallback[1:], strict=True):
        expected = _folded(mine) if mine["type"] == "run" else mine
        assert theirs == expected
        assert json.dumps(theirs, sort_keys=True) == json.dumps(expected, sort_keys=True)
    # What the comparison covered (not an empty ledger on both sides).
    [alpha] = [line for line in fallback if line.get("run", {}).get("id") == _id(1)]
    assert alpha["run"]["record"]["notes"] == ["first", "second"]
    assert alpha["run"]["user"] == "ana" and len(alpha["metrics"]) == 5
    assert [a["name"] for a in fallback[4]["artifacts"]] == ["empty", "git.diff"]
    assert fallback[6]["run"]["status"] == "running"
    assert fallback[-1]["event"]["consumer_run_id"] == "0123456789abcdef-elsewhere"

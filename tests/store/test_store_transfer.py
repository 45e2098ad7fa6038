"""``wattwise ledger export | import``: lossless, idempotent, merges, refuses bad files."""

from __future__ import annotations

import gzip
import io
import json
import os
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "cli"))

from cli_support import assert_one_line_error, call, cli

from wattwise.store import ComponentEnergy, ReuseEvent, RunRecord, RunStatus
from wattwise.store._sqlite import SQLiteRunStore
from wattwise.store._transfer import (
    FORMAT,
    VERSION,
    LedgerFileError,
    export_ledger,
    import_ledger,
)

T0 = 1_760_000_000.0


def _run(
    store: SQLiteRunStore, name: str, *, status: RunStatus = RunStatus.FINISHED,
    parent: str | None = None, study: str | None = None, heartbeat: float = T0 + 60,
    metrics: int = 5, run_id: str | None = None,
) -> str:  # fmt: skip
    rid = run_id or uuid.uuid4().hex
    comp = ComponentEnergy(
        component="cpu", energy_j=123.456789, machine_energy_j=300.1, band_j=None,
        method="model", meter="cpu-model", source="row 7 of the table",
        info={"tdp_w": 65, "nested": {"a": [1, 2.5, None]}},
    )  # fmt: skip
    gpu = ComponentEnergy(
        component="gpu", energy_j=1e-9, machine_energy_j=2.0, band_j=0.1, method="counter",
        meter="gpu-nvml", source="nvml", info={},
    )  # fmt: skip
    store.insert_run(RunRecord(
        id=rid, name=name, kind="trial" if study else "python", status=RunStatus.RUNNING,
        started_at=T0, heartbeat_at=T0, host="hostA", pid=4242, parent_id=parent,
        study_id=study, region="FR", tags=["x", "é ü"], params={"lr": 0.1, "layers": [1, 2]},
        record={"intensity": {"g_per_kwh": 31.0}, "text": "line\nbreak \x1b[31m"},
        components=[comp, gpu],
    ))  # fmt: skip
    store.flush_run(
        rid,
        {"status": status, "heartbeat_at": heartbeat, "ended_at": T0 + 60, "duration_s": 60.0,
         "energy_j": 0.1 + 0.2, "energy_band_j": 1 / 3, "co2e_g": 2.5e-7, "exit_code": 3},
        samples=[(0.5 * i, "cpu", 10.0 + i, 5.0 * i) for i in range(4)],
        metrics=[(i if i % 2 else None, f"loss{i % 2}", 1.0 / (i + 1), T0 + i)
                 for i in range(metrics)],
    )  # fmt: skip
    return rid


def _ledger(path: Path) -> tuple[SQLiteRunStore, list[str]]:
    store = SQLiteRunStore(path)
    a = _run(store, "alpha")
    b = _run(store, "nested", parent=a)
    driver = _run(store, "study")
    t = _run(store, "trial", study=driver, status=RunStatus.FAILED)
    c = _run(store, "still running", status=RunStatus.RUNNING)
    store.annotate_run(a, "seeds", {"python": 1})
    store.annotate_run(a, "notes", "first", append=True)
    store.annotate_run(a, "notes", "second", append=True)
    store.put_artifact(a, "git.diff", b"diff --git a b\n\x00\xff binary")
    store.put_artifact(t, "git.diff", b"diff --git a b\n\x00\xff binary")  # shared blob
    store.put_artifact(t, "empty", b"")
    for consumer in (t, None, "0123456789abcdef-elsewhere"):
        store.add_reuse(ReuseEvent(
            at=T0 + 5, cache_key="ab" * 32, function="m:f", producer_run_id=a,
            consumer_run_id=consumer, energy_avoided_j=12.5, co2e_avoided_g=0.1,
            duration_avoided_s=3.0, method="measured", basis="FR 31 g/kWh", cache_url="/c",
        ))  # fmt: skip
    return store, [a, b, driver, t, c]


def _export(store: Any) -> list[dict[str, Any]]:
    out = io.StringIO()
    export_ledger(store, out)
    return [json.loads(line) for line in out.getvalue().splitlines()]


def _view(store: SQLiteRunStore) -> dict[str, Any]:
    """Everything the public API reads back, per run."""
    view: dict[str, Any] = {}
    for run in store.list_runs():
        # A reader's verdict on a running run names the seconds since its heartbeat: it
        # changes between two reads, so it is left out of the comparison.
        record = {k: v for k, v in run.record.items() if k not in ("liveness", "warnings")}
        view[run.id] = {
            "run": run.to_dict(), "record": record, "heartbeat": run.heartbeat_at,
            "host": run.host, "pid": run.pid, "components": [vars(c) for c in run.components],
            "metrics": store.metrics(run.id), "samples": store.samples(run.id),
            "artifacts": [(a, store.get_artifact(run.id, a["name"]))
                          for a in store.artifacts(run.id)],
        }  # fmt: skip
    view["reuse"] = [e.to_dict() for e in store.reuse_events()]
    return view


def test_round_trip_is_lossless(tmp_path: Path) -> None:
    source, ids = _ledger(tmp_path / "a.db")
    first = _export(source)
    assert first[0]["format"] == FORMAT and first[0]["version"] == VERSION
    assert first[0]["runs"] == 5
    target = SQLiteRunStore(tmp_path / "b.db")
    summary = import_ledger(target, (json.dumps(x) for x in first))
    assert summary.runs_added == 5 and summary.metrics == 25 and summary.samples == 20
    assert summary.annotations == 3 and summary.artifacts == 3 and summary.reuse_added == 3
    second = _export(target)
    # Every line but the header's time and source is identical, byte for byte.
    assert [json.dumps(x, sort_keys=True) for x in first[1:]] == [
        json.dumps(x, sort_keys=True) for x in second[1:]
    ]
    assert _view(source) == _view(target)
    # What the API shows matches too: merged annotations, the raw running status.
    run_a = target.get_run(ids[0])
    assert run_a.record["notes"] == ["first", "second"] and run_a.record["seeds"] == {"python": 1}
    assert target.get_artifact(ids[3], "git.diff") == b"diff --git a b\n\x00\xff binary"
    raw = target._conn.execute("SELECT status FROM runs WHERE id = ?", (ids[4],)).fetchone()
    assert raw[0] == "running"  # as stored, not as a reader judged it
    assert target._conn.execute("SELECT count(*) FROM blobs").fetchone()[0] == 2


def test_import_is_idempotent_and_merges_a_colleagues_ledger(tmp_path: Path) -> None:
    mine, ids = _ledger(tmp_path / "mine.db")
    lines = [json.dumps(x) for x in _export(mine)]
    colleague = SQLiteRunStore(tmp_path / "theirs.db")
    import_ledger(colleague, lines)  # they started from my ledger...
    theirs_only = _run(colleague, "their run")  # ...and added a run of their own
    colleague.add_reuse(ReuseEvent(
        at=T0 + 9, cache_key="cd" * 32, function="m:g", producer_run_id=ids[0],
        consumer_run_id=theirs_only, energy_avoided_j=1.0, co2e_avoided_g=0.01,
        duration_avoided_s=1.0, method="measured", basis="FR", cache_url="/c",
    ))  # fmt: skip
    again = import_ledger(mine, lines)
    assert (again.runs_added, again.runs_updated, again.runs_unchanged) == (0, 0, 5)
    assert again.metrics == again.annotations == again.artifacts == again.reuse_added == 0
    assert again.reuse_present == 3
    merged = import_ledger(mine, [json.dumps(x) for x in _export(colleague)])
    assert (merged.runs_added, merged.runs_unchanged, merged.reuse_added) == (1, 5, 1)
    assert len(mine.list_runs()) == 6
    assert len(mine.reuse_events()) == 4
    assert mine._conn.execute("SELECT count(*) FROM metrics").fetchone()[0] == 30
    assert mine._conn.execute("SELECT count(*) FROM annotations").fetchone()[0] == 3
    once_more = import_ledger(mine, [json.dumps(x) for x in _export(colleague)])
    assert once_more.runs_added == 0 and once_more.reuse_added == 0


def test_a_later_state_of_a_run_replaces_the_earlier_one(tmp_path: Path) -> None:
    early = SQLiteRunStore(tmp_path / "early.db")
    rid = _run(early, "long run", status=RunStatus.RUNNING, heartbeat=T0 + 10, metrics=2)
    late = SQLiteRunStore(tmp_path / "late.db")
    _run(late, "long run", run_id=rid, heartbeat=T0 + 99, metrics=6)
    result = import_ledger(early, [json.dumps(x) for x in _export(late)])
    assert result.runs_updated == 1
    assert early.get_run(rid).status is RunStatus.FINISHED
    assert len(early.metrics(rid)) == 6
    # The earlier state does not overwrite the later one.
    stale = SQLiteRunStore(tmp_path / "stale.db")
    _run(stale, "long run", run_id=rid, status=RunStatus.RUNNING, heartbeat=T0 + 10, metrics=2)
    back = import_ledger(early, [json.dumps(x) for x in _export(stale)])
    assert back.runs_unchanged == 1 and len(early.metrics(rid)) == 6


def test_cli_export_import_gzip_and_stdout(tmp_path: Path) -> None:
    source, _ids = _ledger(tmp_path / "a.db")
    source.close()
    out = tmp_path / "ledger.jsonl.gz"
    done = call("--store", str(tmp_path / "a.db"), "ledger", "export", "-o", str(out))
    assert done.code == 0, done.err
    assert "Exported 5 run(s), 25 metric points" in done.out
    with gzip.open(out, "rt", encoding="utf-8") as handle:
        assert json.loads(handle.readline())["format"] == FORMAT
    imported = call("ledger", "import", str(out), "--store", str(tmp_path / "b.db"))
    assert imported.code == 0, imported.err
    assert "5 run(s) added" in imported.out
    again = call("ledger", "import", str(out), "--store", str(tmp_path / "b.db"), "--json")
    assert json.loads(again.out)["runs_unchanged"] == 5
    # A pipe between two processes: export on stdout, summary on stderr.
    piped = cli("--store", str(tmp_path / "a.db"), "ledger", "export")
    assert piped.code == 0 and json.loads(piped.out.splitlines()[0])["runs"] == 5
    assert "Exported 5 run(s)" in piped.err
    plain = tmp_path / "plain.jsonl"
    plain.write_text(piped.out, encoding="utf-8")
    into_c = call("--store", str(tmp_path / "c.db"), "ledger", "import", str(plain))
    assert into_c.code == 0 and "5 run(s) added" in into_c.out


def _good_lines(tmp_path: Path) -> list[str]:
    store, _ids = _ledger(tmp_path / "good.db")
    return [json.dumps(x) for x in _export(store)]


@pytest.mark.parametrize(
    ("mutate", "needle"),
    [
        (lambda ls: ["not json at all", *ls[1:]], "line 1: not JSON"),
        (lambda ls: [json.dumps({"format": "other"}), *ls[1:]], "not a wattwise ledger export"),
        (lambda ls: [json.dumps({"format": FORMAT, "version": 99}), *ls[1:]], "pip install -U"),
        (lambda ls: [ls[0], "[1, 2]"], "line 2: expected a JSON object"),
        (lambda ls: [ls[0], json.dumps({"type": "nope"})], "unknown line type"),
        (lambda ls: [ls[0], _edit(ls[1], ["run", "pid"], "x")], "'pid' is 'x', expected int"),
        (lambda ls: [ls[0], _edit(ls[1], ["run", "status"], "done")], "status 'done'"),
        (lambda ls: [ls[0], _edit(ls[1], ["run", "id"], "../../etc")], "is not an id"),
        (lambda ls: [ls[0], _edit(ls[1], ["run", "energy_j"], "NaN")], "energy_j"),
        (lambda ls: [ls[0], _edit(ls[1], ["metrics"], [[1, "k"]])], "is not [step, key"),
        (lambda ls: [ls[0], _edit(ls[1], ["run", "secret"], 1)], "unknown fields ['secret']"),
        (lambda ls: [ls[0], _art(ls, "content_b64", "!!!")], "is not base64"),
        (lambda ls: [ls[0], _art(ls, "content_b64", "AAAA")], "does not match its sha256"),
        (lambda ls: [], "is empty"),
    ],
)
def test_bad_files_are_one_line_errors(tmp_path: Path, mutate: Any, needle: str) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text("\n".join(mutate(_good_lines(tmp_path))) + "\n", encoding="utf-8")
    result = call("--store", str(tmp_path / "target.db"), "ledger", "import", str(bad))
    assert_one_line_error(result, 1, needle)


def _edit(line: str, path: list[str], value: Any) -> str:
    data = json.loads(line)
    node = data
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = float(value) if value == "NaN" else value
    return json.dumps(data)


def _art(lines: list[str], key: str, value: str) -> str:
    for line in lines[1:]:
        data = json.loads(line)
        if data.get("artifacts"):
            data["artifacts"][0][key] = value
            return json.dumps(data)
    msg = "no artifact"
    raise AssertionError(msg)


def test_files_that_are_not_exports(tmp_path: Path) -> None:
    store = str(tmp_path / "t.db")
    missing = call("--store", store, "ledger", "import", str(tmp_path / "nope.jsonl"))
    assert_one_line_error(missing, 1, "No file")
    binary = tmp_path / "x.jsonl"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    assert_one_line_error(call("--store", store, "ledger", "import", str(binary)), 1)
    fake_gz = tmp_path / "x.jsonl.gz"
    fake_gz.write_bytes(b"not gzip")
    assert_one_line_error(
        call("--store", store, "ledger", "import", str(fake_gz)), 1, "not a ledger export"
    )
    folder = call("--store", store, "ledger", "import", str(tmp_path))
    assert_one_line_error(folder, 1, "is a folder")
    deep = tmp_path / "deep.jsonl"
    deep.write_text('{"format": "' + FORMAT + '", "version": 1}\n' + "[" * 100_000 + "\n")
    assert_one_line_error(call("--store", store, "ledger", "import", str(deep)), 1, "line 2")


def test_a_bad_line_keeps_earlier_batches_and_reimport_adds_the_rest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import wattwise.store._transfer as transfer

    monkeypatch.setattr(transfer, "BATCH_RUNS", 2)
    lines = _good_lines(tmp_path)
    target = SQLiteRunStore(tmp_path / "t.db")
    broken = [*lines[:4], "{oops", *lines[4:]]
    with pytest.raises(LedgerFileError, match="line 5: not JSON"):
        import_ledger(target, broken)
    assert len(target.list_runs()) == 2  # the first batch of two runs landed, the next did not
    result = import_ledger(target, lines)
    assert (result.runs_added, result.runs_unchanged) == (3, 2)
    assert len(target.list_runs()) == 5


def test_export_never_writes_the_ledger(tmp_path: Path) -> None:
    store, _ids = _ledger(tmp_path / "a.db")
    store.close()
    os.chmod(tmp_path / "a.db", 0o444)
    before = (tmp_path / "a.db").stat().st_mtime_ns
    result = call("--store", str(tmp_path / "a.db"), "ledger", "export", "-o",
                  str(tmp_path / "out.jsonl"))  # fmt: skip
    assert result.code == 0, result.err
    assert (tmp_path / "a.db").stat().st_mtime_ns == before
    assert not list(tmp_path.glob(".out.jsonl.partial"))


def test_moves_between_backends(tmp_path: Path) -> None:
    """SQLite → memory → SQLite keeps what the API reads (memory has no raw annotations)."""
    pytest.importorskip("wattwise.store._memory", reason="the memory store (H7) is not here yet")
    from wattwise.store import get_store  # type: ignore[attr-defined]

    source, _ids = _ledger(tmp_path / "a.db")
    memory = get_store(f"memory://transfer-{time.time_ns()}")
    import_ledger(memory, [json.dumps(x) for x in _export(source)])
    back = SQLiteRunStore(tmp_path / "back.db")
    import_ledger(back, [json.dumps(x) for x in _export(memory)])
    assert _view(back) == _view(source)


def test_moves_to_postgresql_and_back(tmp_path: Path, pg_url: str) -> None:
    """SQLite → PostgreSQL → SQLite keeps what the API reads; importing again adds nothing."""
    from wattwise.store import get_store

    source, _ids = _ledger(tmp_path / "a.db")
    server = get_store(pg_url)
    try:
        lines = [json.dumps(x) for x in _export(source)]
        first = import_ledger(server, lines)
        assert first.runs_added == 5 and first.reuse_added == 3
        again = import_ledger(server, lines)
        assert again.runs_added == 0 and again.runs_unchanged == 5 and again.reuse_added == 0
        back = SQLiteRunStore(tmp_path / "back.db")
        import_ledger(back, [json.dumps(x) for x in _export(server)])
    finally:
        server.close()
    assert _view(back) == _view(source)

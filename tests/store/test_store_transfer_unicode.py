"""Ledger export and import keep the ledger's rule for text that is not valid Unicode.

A run named from a filename's bytes that are not UTF-8 (``os.fsdecode(b"a\\xff")`` is
``"a\\udcff"``, a lone surrogate) is recorded with the escape ``a\\xff``
(``wattwise.store._records``). Export carries that escaped name, and import writes it back
unchanged; a file whose JSON holds the lone surrogate itself (``"a\\udcff"``) is imported
with the same escape, once, like any other text.
"""

from __future__ import annotations

import io
import json
import os
import uuid
from pathlib import Path
from typing import Any

from wattwise.store import MemoryRunStore, ReuseEvent, RunRecord, RunStatus
from wattwise.store._sqlite import SQLiteRunStore
from wattwise.store._transfer import export_ledger, import_from_path, import_ledger

T0 = 1_760_000_000.0
#: What os.fsdecode makes of a filename holding the byte 0xff (not UTF-8).
ODD = os.fsdecode(b"data-\xff.csv")
#: How every ledger writes it: a backslash, then x and the byte in hex.
ESCAPED = "data-\\xff.csv"


def _odd_run(store: Any) -> str:
    rid = uuid.uuid4().hex
    store.insert_run(RunRecord(
        id=rid, name=ODD, kind="python", status=RunStatus.RUNNING, started_at=T0,
        heartbeat_at=T0, host="hostA", pid=4242, tags=[ODD], params={ODD: ODD},
        record={"data": [{"path": ODD}]},
    ))  # fmt: skip
    store.flush_run(
        rid, {"status": RunStatus.FINISHED, "heartbeat_at": T0 + 9, "ended_at": T0 + 9,
              "duration_s": 9.0, "energy_j": 4.5},
        samples=[(0.5, "cpu", 10.0, 5.0)], metrics=[(1, ODD, 0.25, T0 + 1)],
    )  # fmt: skip
    store.add_reuse(ReuseEvent(
        at=T0 + 2, cache_key="ab" * 32, function=ODD, producer_run_id=None,
        consumer_run_id=rid, energy_avoided_j=1.5, co2e_avoided_g=0.1,
        duration_avoided_s=2.0, method="measured", basis="FR", cache_url="/c",
    ))  # fmt: skip
    return rid


def _assert_escaped(store: Any, rid: str) -> None:
    run = store.get_run(rid)
    assert run.name == ESCAPED
    assert run.tags == [ESCAPED]
    assert run.params == {ESCAPED: ESCAPED}
    assert run.record["data"] == [{"path": ESCAPED}]
    assert [m[1] for m in store.metrics(rid)] == [ESCAPED]
    assert [e.function for e in store.reuse_events(consumer_run_id=rid)] == [ESCAPED]


def test_a_run_named_with_a_lone_surrogate_exports_and_imports_with_its_escaped_name(
    tmp_path: Path,
) -> None:
    source = SQLiteRunStore(tmp_path / "a.db")
    rid = _odd_run(source)
    _assert_escaped(source, rid)  # recorded with the escape, as every write does
    export = tmp_path / "ledger.jsonl"
    with export.open("w", encoding="utf-8") as handle:
        summary = export_ledger(source, handle)
    assert summary.runs == 1 and summary.reuse == 1
    text = export.read_text(encoding="utf-8")  # valid UTF-8: it reads back strictly
    assert json.loads(text.splitlines()[1])["run"]["name"] == ESCAPED
    for target in (SQLiteRunStore(tmp_path / "b.db"), MemoryRunStore(f"memory://{rid}")):
        first = import_from_path(target, str(export))
        assert (first.runs_added, first.metrics, first.reuse_added) == (1, 1, 1)
        _assert_escaped(target, rid)
        again = import_from_path(target, str(export))
        assert (again.runs_added, again.runs_unchanged, again.reuse_added) == (0, 1, 0)


def test_a_file_holding_the_lone_surrogate_itself_imports_it_as_its_escape(
    tmp_path: Path,
) -> None:
    source = SQLiteRunStore(tmp_path / "a.db")
    rid = _odd_run(source)
    out = io.StringIO()
    export_ledger(source, out)
    escaped_lines = out.getvalue().splitlines()
    # The same run as a file from elsewhere holds it: the JSON escape of the lone surrogate.
    raw = [line.replace(json.dumps(ESCAPED)[1:-1], "\\udcff".join(["data-", ".csv"]))
           for line in escaped_lines]  # fmt: skip
    assert "data-\\udcff.csv" in raw[1] and json.loads(raw[1])["run"]["name"] == ODD
    target = SQLiteRunStore(tmp_path / "b.db")
    first = import_ledger(target, raw, name="theirs.jsonl")
    assert (first.runs_added, first.metrics, first.reuse_added) == (1, 1, 1)
    _assert_escaped(target, rid)
    # The escaped export of the same run is the same run and the same hit: nothing twice.
    again = import_ledger(target, escaped_lines)
    assert (again.runs_added, again.runs_unchanged) == (0, 1)
    assert (again.reuse_added, again.reuse_present) == (0, 1)
    back = io.StringIO()
    export_ledger(target, back)
    assert back.getvalue().splitlines()[1:] == escaped_lines[1:]

"""The spool: durable JSON lines, merged once, in order, only when its owner is done."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from wattwise.exceptions import StoreError
from wattwise.store import RunStatus, SQLiteRunStore, merge_spools, pending_spools
from wattwise.store._spool import Spool, read_spool, spool_dirs


@pytest.fixture(autouse=True)
def state_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "state"
    monkeypatch.setenv("XDG_STATE_HOME", str(home))
    return home


def run_dict(run_id: str, **kw: object) -> dict[str, object]:
    now = time.time()
    data: dict[str, object] = {
        "id": run_id, "name": "spooled", "kind": "python", "status": "running",
        "parent_id": None, "study_id": None, "started_at": now, "ended_at": None,
        "heartbeat_at": now, "duration_s": 0.0, "exit_code": None,
        "host": socket.gethostname(), "pid": os.getpid(), "energy_j": 0.0,
        "energy_band_j": 0.0, "machine_energy_j": 0.0, "co2e_g": 0.0, "co2e_band_g": 0.0,
        "region": "FR", "tags": [], "params": {}, "record": {"sampler": {"flush_s": 5.0}},
    }  # fmt: skip
    data.update(kw)
    return data


def flush(energy: float, *, final: bool = False, beat: float | None = None,
          metrics: list[object] | None = None) -> dict[str, object]:  # fmt: skip
    fields: dict[str, object] = {"energy_j": energy, "heartbeat_at": beat or time.time(),
                                 "duration_s": 1.0}  # fmt: skip
    if final:
        fields.update(status="finished", ended_at=time.time(), exit_code=0)
    return {"op": "flush", "final": final, "fields": fields, "components": [
        {"component": "cpu", "energy_j": energy, "machine_energy_j": 2 * energy,
         "band_j": None, "method": "counter", "meter": "fake", "source": "test", "info": {}}],
        "samples": [[1.0, "cpu", 2.0, energy]], "metrics": metrics or []}  # fmt: skip


def test_lines_are_json_and_a_partial_last_line_is_ignored(tmp_path: Path) -> None:
    ledger = tmp_path / ".wattwise" / "ledger.db"
    spool = Spool(ledger, "r1", run_dict("r1"))
    path = spool.append(flush(1.0), reason="locked")
    spool.append(flush(2.0), reason="locked")
    spool.close()
    assert path.parent == ledger.parent / "spool"
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    lines = path.read_text().splitlines()
    assert [json.loads(line)["op"] for line in lines] == ["header", "flush", "flush"]
    assert json.loads(lines[0])["ledger"] == os.path.abspath(ledger)
    with path.open("ab") as handle:
        handle.write(b'{"op": "flush", "fields": {"energy_j": 99')  # a crash mid-write
    spooled = read_spool(path)
    assert spooled is not None
    assert [e["fields"]["energy_j"] for e in spooled.entries] == [1.0, 2.0]


def test_merge_is_idempotent_ordered_and_notes_the_spool(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.db"
    spool = Spool(ledger, "r2", run_dict("r2"))
    spool.append(flush(1.0, metrics=[[1, "acc", 0.5, time.time()]]), reason="disk full")
    spool.append(flush(3.0, final=True, metrics=[[2, "acc", 0.7, time.time()]]),
                 reason="disk full")  # fmt: skip
    spool.close()
    store = SQLiteRunStore(ledger)
    spooled = read_spool(next((ledger.parent / "spool").iterdir()))
    assert spooled is not None
    assert store.merge_spooled(spooled) == 2
    assert store.merge_spooled(spooled) == 0  # a crash before the file was removed
    run = store.get_run("r2")
    assert run.status is RunStatus.FINISHED and run.energy_j == 3.0
    assert [m[2] for m in store.metrics("r2")] == [0.5, 0.7]  # once each
    assert len(store.samples("r2")) == 2
    assert "disk full" in run.record["notes"][0] and "spooled to" in run.record["notes"][0]
    assert run.record["spooled"][0]["file_id"] == spooled.file_id


def test_an_older_spooled_state_never_overwrites_a_newer_one(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.db"
    store = SQLiteRunStore(ledger)
    spool = Spool(ledger, "r3", run_dict("r3"))
    spool.append(flush(1.0, final=True, beat=time.time() - 100), reason="locked")
    spool.close()
    from wattwise.store import RunRecord

    now = time.time()
    store.insert_run(RunRecord(id="r3", name="n", kind="python", status=RunStatus.FINISHED,
                               started_at=now - 200, heartbeat_at=now, host="h", pid=1,
                               energy_j=5.0))  # fmt: skip
    merged = merge_spools(store)
    assert [m.entries for m in merged] == [1]
    run = store.get_run("r3")
    assert run.energy_j == 5.0 and run.status is RunStatus.FINISHED


def test_only_files_whose_owner_is_done_are_merged(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.db"
    live = Spool(ledger, "live", run_dict("live"))
    live.append(flush(1.0), reason="locked")  # owner: this process, run not ended
    ended = Spool(ledger, "ended", run_dict("ended"))
    ended.append(flush(2.0, final=True), reason="locked")
    child = subprocess.run([sys.executable, "-c", f"""
import sys; sys.path.insert(0, {str(Path(__file__).parents[2] / "src")!r})
from pathlib import Path
from wattwise.store._spool import Spool
Spool(Path({str(ledger)!r}), "ended", None).append(
    {{"op": "metrics", "metrics": [[3, "acc", 0.9, 1.0]]}}, reason="locked")
"""], capture_output=True, text=True)  # a process that logged, then ended
    assert child.returncode == 0, child.stderr
    store = SQLiteRunStore(ledger)
    merged = merge_spools(store)
    assert sorted(m.run_id for m in merged) == ["ended", "ended"]
    assert [m[2] for m in store.metrics("ended")] == [0.9]
    assert [f.run_id for f in pending_spools(ledger)] == ["live"]
    with pytest.raises(StoreError):
        store.get_run("live")
    live.close()
    ended.close()


def test_a_spool_for_another_ledger_is_left_alone(tmp_path: Path) -> None:
    mine, other = tmp_path / "a" / "ledger.db", tmp_path / "b" / "ledger.db"
    spool = Spool(other, "elsewhere", run_dict("elsewhere"))
    (tmp_path / "b" / "spool").mkdir(parents=True)
    (tmp_path / "b" / "spool").chmod(0o500)  # root ignores this; the file below matters
    spool.close()
    spool._failed_dirs.add(spool_dirs(other)[0])  # force the user's state folder
    spool.append(flush(1.0, final=True), reason="read-only")
    spool.close()
    assert merge_spools(SQLiteRunStore(mine)) == []
    assert [f.run_id for f in pending_spools(other)] == ["elsewhere"]


def test_an_unwritable_folder_falls_back_to_the_state_folder(
    tmp_path: Path, state_home: Path
) -> None:
    ledger = tmp_path / ".wattwise" / "ledger.db"
    (tmp_path / ".wattwise").mkdir()
    (tmp_path / ".wattwise" / "spool").write_text("a file where the folder would go")
    spool = Spool(ledger, "r4", run_dict("r4"))
    path = spool.append(flush(1.0, final=True), reason="read-only")
    spool.close()
    assert path.parent == state_home / "wattwise" / "spool"
    store = SQLiteRunStore(ledger)
    assert [m.run_id for m in merge_spools(store)] == ["r4"]
    assert not path.exists()


def test_no_writable_folder_is_a_store_error(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    (tmp_path / "file").write_text("x")
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "file" / "state"))
    (tmp_path / "spool").write_text("x")
    spool = Spool(tmp_path / "ledger.db", uuid.uuid4().hex, None)
    with pytest.raises(StoreError, match="Cannot write the spool"):
        spool.append({"op": "metrics", "metrics": []}, reason="x")

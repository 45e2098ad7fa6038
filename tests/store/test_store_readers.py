"""Readers never write; a live run is never shown crashed.

Reads open the ledger read-only (``mode=ro``): they work on a read-only file or folder,
create no ledger and no folder, and judge a running run's liveness without writing it.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import sqlite3
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from wattwise.exceptions import StoreError
from wattwise.store import RunRecord, RunStatus, SQLiteRunStore, open_store
from wattwise.store._liveness import identity

READ_VERBS = [
    ["runs"], ["runs", "--json"], ["show", "RUN"], ["footprint"], ["footprint", "--json"],
    ["report", "-o", "-", "--format", "md"], ["export", "--format", "codecarbon-csv"],
    ["sci", "--functional-unit", "run", "--count", "1"],
]  # fmt: skip


def make_run(**kw: object) -> RunRecord:
    now = time.time()
    fields: dict[str, object] = {
        "id": uuid.uuid4().hex, "name": "r", "kind": "python", "status": RunStatus.RUNNING,
        "started_at": now, "heartbeat_at": now, "host": socket.gethostname(),
        "pid": os.getpid(),
    }  # fmt: skip
    fields.update(kw)
    return RunRecord(**fields)  # type: ignore[arg-type]


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "wattwise", *args], capture_output=True,
                          text=True, timeout=120)  # fmt: skip


def snapshot(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.iterdir()) if p.is_file()}  # fmt: skip


def ledger_with_a_run(folder: Path) -> tuple[Path, str]:
    path = folder / "ledger.db"
    store = SQLiteRunStore(path)
    run = make_run(status=RunStatus.FINISHED, ended_at=time.time(), energy_j=5.0,
                   record={"sampler": {"flush_s": 5.0}})  # fmt: skip
    store.insert_run(run)
    store.close()  # the last connection: the WAL is folded in and removed
    return path, run.id


def test_reading_a_missing_default_ledger_creates_nothing(isolated_project: Path) -> None:
    os.rmdir(isolated_project / ".wattwise")
    store = open_store()
    assert store.list_runs() == []
    assert store.reuse_totals().hits == 0
    store.close()
    assert list(isolated_project.iterdir()) == []
    done = cli("runs")
    assert done.returncode == 0
    assert list(isolated_project.iterdir()) == []


def test_a_missing_explicit_store_is_one_line_and_creates_nothing(tmp_path: Path) -> None:
    target = tmp_path / "typo" / "dir" / "ledger.db"
    with pytest.raises(StoreError, match="No ledger at"):
        open_store(str(target)).list_runs()
    for verb in (["runs"], ["footprint"], ["show", "abcd1234"]):
        done = cli(*verb, "--store", str(target))
        assert done.returncode == 1, (verb, done.stderr)
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr
        assert "No ledger at" in done.stderr
    assert not (tmp_path / "typo").exists()


def test_read_verbs_leave_the_ledger_folder_byte_identical(isolated_project: Path) -> None:
    folder = isolated_project / ".wattwise"
    _, run_id = ledger_with_a_run(folder)
    before = snapshot(folder)
    for verb in READ_VERBS:
        done = cli(*[run_id if a == "RUN" else a for a in verb])
        assert done.returncode == 0, (verb, done.stderr)
    after = snapshot(folder)
    # SQLite's read-only connection may leave its lock files (an empty -wal, the -shm
    # index) beside the ledger; the ledger itself is not touched, byte for byte.
    assert after.pop("ledger.db-shm", None) is None or not before.get("ledger.db-shm")
    assert (folder / "ledger.db-wal").stat().st_size == 0 if "ledger.db-wal" in after else True
    after.pop("ledger.db-wal", None)
    assert after == before


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to mount read-only (chmod is "
                                                "ignored by root, so nothing else proves it)")
def test_read_verbs_work_on_a_read_only_folder(isolated_project: Path) -> None:
    folder = isolated_project / ".wattwise"
    _, run_id = ledger_with_a_run(folder)
    mounted = subprocess.run(["mount", "--bind", str(folder), str(folder)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount here: {mounted.stderr.decode().strip()}")
    try:
        subprocess.run(["mount", "-o", "remount,ro,bind", str(folder)], check=True)
        with pytest.raises(OSError, match="Read-only file system"):
            (folder / "probe").write_text("x")  # really read-only, even for root
        for verb in READ_VERBS:
            done = cli(*[run_id if a == "RUN" else a for a in verb])
            assert done.returncode == 0, (verb, done.stderr)
        assert run_id in cli("runs", "--json").stdout
    finally:
        subprocess.run(["umount", str(folder)], check=True)


def test_reads_judge_a_dead_run_without_writing_and_writers_persist_it(
    tmp_path: Path,
) -> None:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    store = SQLiteRunStore(tmp_path / "ledger.db")
    run = make_run(pid=gone.pid, record={"liveness": {"tracker": {"pid": gone.pid,
                                                                  "start_time": 1.0}}})
    store.insert_run(run)
    store.close()
    reader = open_store(str(tmp_path / "ledger.db"))
    shown = reader.get_run(run.id)
    assert shown.status is RunStatus.CRASHED
    assert shown.ended_at == shown.heartbeat_at
    raw = sqlite3.connect(tmp_path / "ledger.db")
    assert raw.execute("SELECT status FROM runs").fetchone()[0] == "running"  # not written
    assert reader.list_runs(status="crashed")[0].id == run.id
    assert reader.list_runs(status="running") == []
    reader.close()
    writer = SQLiteRunStore(tmp_path / "ledger.db")
    assert writer.reap() == [run.id]
    writer.close()
    assert raw.execute("SELECT status FROM runs").fetchone()[0] == "crashed"
    raw.close()


def test_a_remote_run_is_stale_after_three_of_its_own_flush_intervals(tmp_path: Path) -> None:
    store = SQLiteRunStore(tmp_path / "ledger.db", stale_after_s=10.0)
    now = time.time()
    slow = make_run(host="elsewhere", pid=1, heartbeat_at=now - 36,
                    record={"sampler": {"flush_s": 40.0}})  # the 40 s flush
    late = make_run(host="elsewhere", pid=1, heartbeat_at=now - 200,
                    record={"sampler": {"flush_s": 40.0}})  # 3 x 40 + 10 = 130 s
    for run in (slow, late):
        store.insert_run(run)
    shown = {r.id: r for r in store.list_runs()}
    assert shown[slow.id].status is RunStatus.RUNNING
    assert shown[late.id].status is RunStatus.CRASHED
    assert "stale after 130 s" in shown[late.id].record["liveness"]["note"]


def test_on_this_host_liveness_is_pid_plus_start_time(tmp_path: Path) -> None:
    with subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]) as alive:
        try:
            me = identity(alive.pid)
            store = SQLiteRunStore(tmp_path / "ledger.db")
            same = make_run(pid=alive.pid, heartbeat_at=time.time() - 3600,
                            record={"liveness": {"tracker": me}})  # old heartbeat, live pid
            reused = make_run(pid=alive.pid, record={"liveness": {"tracker": {
                "pid": alive.pid, "start_time": me["start_time"] - 100}}})  # pid reused
            for run in (same, reused):
                store.insert_run(run)
            shown = {r.id: r for r in store.list_runs()}
            assert shown[same.id].status is RunStatus.RUNNING
            assert shown[reused.id].status is RunStatus.CRASHED
        finally:
            alive.kill()


def test_a_lost_tracker_with_a_live_command_is_shown_running_with_a_note(
    tmp_path: Path,
) -> None:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    with subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]) as command:
        try:
            store = SQLiteRunStore(tmp_path / "ledger.db")
            run = make_run(pid=gone.pid, energy_j=3.0, record={"liveness": {
                "tracker": {"pid": gone.pid, "start_time": 1.0},
                "command": identity(command.pid)}})  # fmt: skip
            store.insert_run(run)
            shown = store.get_run(run.id)
            assert shown.status is RunStatus.RUNNING
            note = f"tracker lost; command still running as pid {command.pid}"
            assert shown.record["liveness"]["note"] == note
            assert note in shown.record["warnings"]  # `wattwise show` prints warnings
            assert json.loads(cli("show", run.id, "--json", "--store",
                                  str(tmp_path / "ledger.db")).stdout)["status"] == "running"
        finally:
            command.kill()
            command.wait()
    shown = store.get_run(run.id)
    assert shown.status is RunStatus.CRASHED
    assert shown.energy_j == 3.0  # the energy of its last flush

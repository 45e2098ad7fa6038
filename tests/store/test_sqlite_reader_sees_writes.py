"""A long-lived SQLite reader sees what other processes commit after it opened the ledger.

A dashboard, ``wattwise watch``, the Prometheus exporter, a tuning driver or a notebook keeps
one ``SQLiteRunStore`` open for hours. Each of its reads must see every write committed
before the read began, whatever state the file was in when the reader opened it: missing,
half created by another process (an empty file, or WAL mode set and no schema yet), a
ledger of an older release (read from a copy in memory), a schema-3 ledger (read through
views), a file in a read-only folder (read as immutable), or a file replaced at its path.

Before the fix a reader that opened a file another process was creating copied it into
memory and kept that copy for good: 19 of 20 readers polling while another process created
the ledger never saw its run. And a store that opened the file read its header through a
descriptor of its own, whose closing dropped the SQLite locks of every other store of the
process. The writes here come from real second processes; after such
a process has exited its commits are done, so the reader's next read must show them (no
waiting, no clock).
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from wattwise.store import SCHEMA_VERSION, RunStatus, SQLiteRunStore, login_name
from wattwise.store._schema import MIGRATIONS
from wattwise.testing.store_contract import make_run

FIXTURES = Path(__file__).parent / "fixtures"

#: Another process: opens the ledger, adds a finished run (5 J, one metric), prints its id.
WRITER = r"""
import sys, time
from wattwise.store import RunStatus, SQLiteRunStore
from wattwise.testing.store_contract import make_run
store = SQLiteRunStore(sys.argv[1])
run = make_run(name=sys.argv[2])
store.insert_run(run)
now = time.time()
store.flush_run(run.id, {"status": RunStatus.FINISHED, "ended_at": now, "heartbeat_at": now,
                         "energy_j": 5.0}, metrics=[(0, "loss", 0.5, now)])
store.close()
print(run.id, flush=True)
"""


def start_writer(path: Path, name: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", WRITER, str(path), name],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip


def finished(proc: subprocess.Popen[str]) -> str:
    """The writer's run id, once it has exited (killed by its own handle if it hangs)."""
    try:
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err[-2000:]
    return out.strip()


def write_elsewhere(path: Path, name: str) -> str:
    return finished(start_writer(path, name))


def assert_sees(reader: SQLiteRunStore, run_id: str, name: str) -> None:
    """The reader shows the run as the other process committed it, through every read."""
    assert run_id in {r.id for r in reader.list_runs()}
    got = reader.get_run(run_id)
    assert (got.name, got.status, got.energy_j) == (name, RunStatus.FINISHED, 5.0)
    assert got.user == login_name()  # a column the current schema has (and views hid)
    assert [m[:3] for m in reader.metrics(run_id)] == [(0, "loss", 0.5)]


# -- the states a reader may first find the file in ------------------------------------


def missing(path: Path) -> set[str]:
    return set()


def empty_file(path: Path) -> set[str]:
    """The instant another process has created the file, before it wrote anything."""
    path.touch()
    return set()


def wal_without_schema(path: Path) -> set[str]:
    """Another process has set WAL mode and not yet committed the schema."""
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.close()
    return set()


def current(path: Path) -> set[str]:
    store = SQLiteRunStore(path)
    run = make_run(name="before")
    store.insert_run(run)
    store.close()
    return {run.id}


def release_0_1(path: Path) -> set[str]:
    """A ledger of the v0.1 release (schema 2): read from a copy in memory."""
    shutil.copy(FIXTURES / "ledger_v0_1.db", path)
    store = SQLiteRunStore(path, readonly=True)
    try:
        return {r.id for r in store.list_runs()}
    finally:
        store.close()


def schema_3(path: Path) -> set[str]:
    """A schema-3 ledger (today's release): read in place through views."""
    conn = sqlite3.connect(path)
    for migration in MIGRATIONS[:3]:
        for statement in migration.sqlite:
            conn.execute(statement)
    conn.execute("PRAGMA user_version = 3")
    conn.execute(
        "INSERT INTO runs (id, name, kind, status, started_at, heartbeat_at, host, pid, "
        "energy_j) VALUES ('r3aaaaaa', 'old', 'python', 'finished', 1e9, 1e9, 'h', 1, 7.0)"
    )
    conn.commit()
    conn.close()
    return {"r3aaaaaa"}


@pytest.mark.parametrize(
    "prepare", [missing, empty_file, wal_without_schema, current, release_0_1, schema_3]
)
def test_a_reader_sees_runs_another_process_commits_later(
    tmp_path: Path, prepare: Callable[[Path], set[str]]
) -> None:
    path = tmp_path / "ledger.db"
    before = prepare(path)
    reader = SQLiteRunStore(path, readonly=True)
    try:
        assert {r.id for r in reader.list_runs()} == before
        first = write_elsewhere(path, "first")  # creates or migrates the ledger
        assert_sees(reader, first, "first")
        assert {r.id for r in reader.list_runs()} == before | {first}
        assert reader.count_runs() == len(before) + 1
        second = write_elsewhere(path, "second")  # and later writes, once it is current
        assert_sees(reader, second, "second")
        assert reader.count_runs() == len(before) + 2
        assert reader.schema_version() == SCHEMA_VERSION
    finally:
        reader.close()


def test_a_reader_polling_while_another_process_creates_the_ledger_sees_its_run(
    tmp_path: Path,
) -> None:
    # The race of the hung-ledger test: the reader reads all along, from before the file
    # exists, so it catches the file half created (before the fix: 19 times in 20).
    for attempt in range(3):
        path = tmp_path / f"ledger-{attempt}.db"
        reader = SQLiteRunStore(path)
        try:
            proc = start_writer(path, "created meanwhile")
            deadline = time.monotonic() + 120
            reads = 0
            while proc.poll() is None:
                assert time.monotonic() < deadline, "the writer never finished"
                reader.count_runs()
                reads += 1
                time.sleep(0.001)  # a dashboard that never stops (leaving the writer a core)
            run_id = finished(proc)
            assert [r.id for r in reader.list_runs()] == [run_id], (attempt, reads)
            assert_sees(reader, run_id, "created meanwhile")
        finally:
            reader.close()


def test_a_reader_reads_the_new_ledger_once_the_file_is_replaced(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    old = current(path)
    reader = SQLiteRunStore(path, readonly=True)
    try:
        assert {r.id for r in reader.list_runs()} == old
        os.replace(path, tmp_path / "ledger.db.bad")  # moved aside, as our errors advise
        new = write_elsewhere(path, "in the new ledger")
        assert [r.id for r in reader.list_runs()] == [new]
        assert_sees(reader, new, "in the new ledger")
    finally:
        reader.close()


def test_a_reader_shows_a_run_a_writer_of_the_same_process_commits(tmp_path: Path) -> None:
    # Two store objects of one process (a notebook's writer and its dashboard's reader).
    path = tmp_path / "ledger.db"
    reader = SQLiteRunStore(path, readonly=True)
    writer = SQLiteRunStore(path)
    try:
        assert reader.list_runs() == []
        for n in range(3):
            run = make_run(name=f"run {n}")
            writer.insert_run(run)
            assert reader.get_run(run.id).name == f"run {n}"
            assert reader.count_runs() == n + 1
    finally:
        writer.close()
        reader.close()


def test_another_store_of_this_process_opening_the_ledger_keeps_this_ones_locks(
    tmp_path: Path,
) -> None:
    # SQLite's locks are POSIX locks: closing any descriptor of the file drops all of them
    # for the whole process. A store that read the file's header through a descriptor of
    # its own did that to every other store of its process; another process, taking itself
    # for the last user, then deleted the WAL and -shm under them on closing, and their
    # reads never saw a later write again.
    path = tmp_path / "ledger.db"
    before = current(path)
    reader = SQLiteRunStore(path, readonly=True)
    try:
        assert {r.id for r in reader.list_runs()} == before
        for n in range(2):
            for readonly in (True, False):  # a reader, then a writer, open the file
                other = SQLiteRunStore(path, readonly=readonly)
                if not readonly:
                    other.annotate_run(sorted(before)[0], "seen", n)
                other.close()
            new = write_elsewhere(path, f"run {n}")
            # The other process saw this one's lock: as one of several users, it left them.
            assert Path(f"{path}-wal").exists() and Path(f"{path}-shm").exists()
            assert_sees(reader, new, f"run {n}")
    finally:
        reader.close()


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to mount read-only (chmod is "
                                                "ignored by root, so nothing else proves it)")
def test_a_reader_in_a_read_only_folder_sees_later_writes(tmp_path: Path) -> None:
    # A WAL ledger in a folder this reader cannot write: SQLite cannot make its -shm file,
    # so the reader reads the file as immutable, which SQLite itself never looks at again;
    # another process that can write the folder adds a run.
    folder, view = tmp_path / "rw", tmp_path / "ro"
    folder.mkdir()
    view.mkdir()
    old = current(folder / "ledger.db")
    if shutil.which("mount") is None or shutil.which("umount") is None:
        pytest.skip("mount/umount are not installed here: the read-only folder is not tested")
    mounted = subprocess.run(["mount", "--bind", str(folder), str(view)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount here: {mounted.stderr.decode().strip()}")
    try:
        subprocess.run(["mount", "-o", "remount,ro,bind", str(view)], check=True)
        with pytest.raises(OSError, match="Read-only file system"):
            (view / "probe").write_text("x")  # really read-only, even for root
        reader = SQLiteRunStore(view / "ledger.db")
        try:
            assert {r.id for r in reader.list_runs()} == old
            new = write_elsewhere(folder / "ledger.db", "written beside")
            assert_sees(reader, new, "written beside")
            assert {r.id for r in reader.list_runs()} == old | {new}
        finally:
            reader.close()
    finally:
        subprocess.run(["umount", str(view)], check=True)


def test_a_store_made_from_a_relative_path_keeps_its_file_after_a_chdir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A writer thread that outlives a chdir (a hung write released later) once wrote its run
    # into whatever ledger the new working folder had.
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    monkeypatch.chdir(first)
    store = SQLiteRunStore(Path(".wattwise") / "ledger.db")
    assert store.path == first / ".wattwise" / "ledger.db"
    monkeypatch.chdir(second)
    run = make_run(name="after the chdir")
    try:
        store.insert_run(run)
    finally:
        store.close()
    assert not (second / ".wattwise").exists()
    assert {r.id for r in SQLiteRunStore(first / ".wattwise" / "ledger.db").list_runs()} == {
        run.id}

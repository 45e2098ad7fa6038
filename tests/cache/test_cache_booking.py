"""A cache hit never waits on the ledger: its booking is handed to a thread, bounded, and
a booking that does not land in time is kept, then booked once.

The real case: another process holds the SQLite ledger's write lock (the contract suite's
``blocked`` hook does the same), so a write waits the busy timeout (60 s) before it fails.
A hit then returns at once, its booking is kept in the spool folder and goes on in the
background: it lands once the ledger is free (and the kept copy is marked booked), or, when
the process ended first, the next wattwise process books the kept copy. The booker's own
rules (no wait once stuck, a bounded queue, a bounded wait at exit) are checked on writes
that block on an event the test releases.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path

import pytest

import wattwise
from wattwise.cache import cached
from wattwise.cache._booking import Booker, Keep
from wattwise.exceptions import StoreWarning
from wattwise.store import KeptFile, ReuseEvent, open_store, read_kept_hits, replay_hits
from wattwise.testing import FakeMeter

#: Far below the 60 s busy timeout a synchronous booking would wait.
BOUND_S = 40.0


def _wait_for(predicate: object, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _events() -> list[ReuseEvent]:
    with open_store() as store:
        return store.reuse_events()


@pytest.fixture
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The user's state folder, where kept hits go first (children inherit it)."""
    folder = tmp_path / "state"
    monkeypatch.setenv("XDG_STATE_HOME", str(folder))
    return folder / "wattwise" / "spool"


def _kept(spool: Path) -> list[KeptFile]:
    """The kept-hits files in ``spool``, read back."""
    found = [read_kept_hits(p) for p in sorted(spool.glob("reuse-*.hits"))]
    return [k for k in found if k is not None]


def _waiting(spool: Path) -> int:
    return sum(len(k.waiting) for k in _kept(spool))


def test_a_hit_returns_while_another_process_holds_the_ledger(
    isolated_project: Path, state: Path,
) -> None:
    calls = []

    @cached
    def double(x: int) -> int:
        calls.append(x)
        return 2 * x

    with wattwise.track("fill", meters=[FakeMeter({"cpu:0": 20.0})]):
        assert double(21) == 42  # the miss: measured, stored
    assert calls == [21]
    assert _events() == []

    holder = sqlite3.connect(isolated_project / ".wattwise" / "ledger.db", isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")  # every write now waits the busy timeout (60 s)
        started = time.monotonic()
        with warnings.catch_warnings(record=True) as said:
            warnings.simplefilter("always")
            assert double(21) == 42  # a hit: its booking cannot be written now
            assert double(21) == 42  # the ledger is known to hang: this one does not wait
        took = time.monotonic() - started
        assert calls == [21]
        assert took < BOUND_S, f"two hits took {took:.1f} s on a locked ledger"
        (warned,) = [w for w in said if issubclass(w.category, StoreWarning)]  # said once
        text = str(warned.message)
        assert "did not take the booking of a hit of" in text and "kept in the spool" in text
        assert "double" in text and warned.filename == __file__
        # Both hits are kept on local disk while the ledger is held: nothing lost.
        _wait_for(lambda: _waiting(state) == 2, 120, "the two hits kept")
        (kept,) = _kept(state)
        assert kept.path.stat().st_mode & 0o777 == 0o600
        assert {e.function.rsplit(".", 1)[-1] for e in kept.hits.values()} == {"double"}
        holder.execute("ROLLBACK")  # the ledger is free: both bookings land
    finally:
        holder.close()
    _wait_for(lambda: len(_events()) == 2, 120, "the two bookings")
    # Landed after all: the kept copies are marked booked and their file removed.
    _wait_for(lambda: not list(state.glob("reuse-*.hits")), 120, "the kept file removed")
    with open_store() as store:
        assert replay_hits(store) == 0  # nothing left to book
    events = _events()
    assert len(events) == 2  # each hit once
    assert {e.function.rsplit(".", 1)[-1] for e in events} == {"double"}
    assert all(e.consumer_run_id is None for e in events)  # no run: the project's ledger


class _Gate:
    """Writes that block until the test opens the gate (a ledger that hangs)."""

    def __init__(self) -> None:
        self.open = threading.Event()
        self.written: list[str] = []

    def write(self, name: str) -> object:
        def write() -> None:
            self.open.wait()
            self.written.append(name)

        return write


def test_once_a_booking_hangs_later_hits_do_not_wait_and_nothing_is_lost() -> None:
    gate = _Gate()
    booker = Booker(hit_wait_s=0.2, exit_wait_s=0.2, max_pending=3)
    with pytest.warns(StoreWarning, match="did not take the booking of a within 0.2 s"):
        assert not booker.book(gate.write("a"), what="a")  # waited 0.2 s, then went on
    assert not gate.open.is_set()
    for name in "bcd":  # three more: queued behind it, without waiting (said once only)
        assert not booker.book(gate.write(name), what=name)
    assert booker.pending() == 4
    with pytest.warns(StoreWarning, match="e was not booked in the ledger now: 3 bookings"):
        assert not booker.book(gate.write("e"), what="e")  # beyond the queue's bound
    assert booker.drain() == 4  # bounded: the gate is still shut
    gate.open.set()
    assert booker.drain(wait_s=60) == 0
    assert gate.written == ["a", "b", "c", "d"]
    assert booker.book(gate.write("f"), what="f")  # the ledger answers: waited for again
    assert gate.written[-1] == "f"


def test_a_failed_booking_is_logged_and_the_next_one_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from wattwise.exceptions import StoreError

    def refused() -> None:
        msg = "The ledger at /x is read-only."
        raise StoreError(msg)

    done: list[int] = []
    booker = Booker(hit_wait_s=30)
    with caplog.at_level(logging.WARNING, logger="wattwise"):
        assert booker.book(refused, what="a hit")
    assert "could not record a cache hit in the ledger: The ledger at /x" in caplog.text
    assert booker.book(lambda: done.append(1), what="another")
    assert done == [1]


def _event(i: int, **fields: object) -> ReuseEvent:
    values: dict[str, object] = {
        "at": 1_760_000_000.0 + i / 7, "cache_key": f"{i:064x}", "function": "m:f",
        "producer_run_id": None, "consumer_run_id": None, "energy_avoided_j": 1.5 + i,
        "co2e_avoided_g": 0.1, "duration_avoided_s": 2.0, "method": "measured",
        "basis": "FR", "cache_url": "/c", **fields,
    }  # fmt: skip
    return ReuseEvent(**values)  # type: ignore[arg-type]


def test_hits_not_booked_in_time_are_kept_and_marked_booked_when_they_land(
    isolated_project: Path, state: Path,
) -> None:
    ledger = isolated_project / ".wattwise" / "ledger.db"
    gate = _Gate()
    booker = Booker(hit_wait_s=0.2, exit_wait_s=0.2, max_pending=1)
    keep = [Keep(_event(i), lambda: ledger) for i in range(4)]
    with pytest.warns(StoreWarning, match="a within 0.2 s .* kept in the spool"):
        assert not booker.book(gate.write("a"), what="a", keep=keep[0])
    assert not booker.book(gate.write("b"), what="b", keep=keep[1])  # queued behind a: no wait
    with pytest.warns(StoreWarning, match="c was not booked in the ledger now: 1 bookings"):
        assert not booker.book(gate.write("c"), what="c", keep=keep[2])  # beyond the bound
    assert booker.settle(wait_s=60) == 0
    (kept,) = _kept(state)
    assert sorted(e.energy_avoided_j for e in kept.hits.values()) == [1.5, 2.5, 3.5]
    assert not kept.booked
    gate.open.set()  # the ledger answers: a and b land, c was never queued
    assert booker.drain(wait_s=60) == 0
    assert booker.settle(wait_s=60) == 0
    assert gate.written == ["a", "b"]
    (kept,) = _kept(state)
    assert [kept.hits[h].energy_avoided_j for h in kept.waiting] == [3.5]  # c waits for a replay
    with open_store() as store:
        assert replay_hits(store) == 0  # its owner (this process) lives: left to it
    assert _waiting(state) == 1


def test_a_booking_the_ledger_refuses_is_kept(isolated_project: Path, state: Path) -> None:
    from wattwise.exceptions import StoreError

    def refused() -> None:
        msg = "The ledger at /x is read-only."
        raise StoreError(msg)

    ledger = isolated_project / ".wattwise" / "ledger.db"
    booker = Booker(hit_wait_s=30)
    assert booker.book(refused, what="a hit", keep=Keep(_event(7), lambda: ledger))
    assert booker.settle(wait_s=60) == 0
    (kept,) = _kept(state)
    assert [kept.hits[h].cache_key for h in kept.waiting] == [f"{7:064x}"]


KEEPER = """
import sys
from pathlib import Path
sys.path.insert(0, sys.argv[4])
from test_cache_booking import _event
from wattwise.store import HitSpool, SQLiteRunStore

ledger, first, count = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
landed = int(sys.argv[5])
spool = HitSpool(ledger)
for i in range(first, first + count):
    spool.keep(_event(i), reason="the test's ledger did not answer")
    if i < first + landed:  # its own booking landed after all; the process ends unmarked
        store = SQLiteRunStore(ledger)
        store.add_reuse(_event(i))
        store.close()
print(spool.path, flush=True)
"""


def _keeper(ledger: Path, first: int, count: int, landed: int) -> Path:
    """A real process that keeps ``count`` hits (``landed`` of them also booked) and exits."""
    done = subprocess.run(
        [sys.executable, "-c", KEEPER, str(ledger), str(first), str(count),
         str(Path(__file__).parent), str(landed)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return Path(done.stdout.strip())


def _ledger_holding(i: int) -> Path:
    """The project's ledger, made, with one booked hit (``_event(i)``) unrelated to the kept
    ones: where a process that is gone had kept its hits."""
    with open_store() as store:
        store.add_reuse(_event(i))
        return store.path


def test_a_replay_books_each_kept_hit_once_even_one_whose_booking_landed_late(
    isolated_project: Path, state: Path,
) -> None:
    ledger = _ledger_holding(100)
    path = _keeper(ledger, 0, 3, landed=1)  # hit 0 landed before its process ended
    assert path.parent == state and path.exists()
    assert len(_events()) == 2
    with open_store() as store:
        assert replay_hits(store) == 2  # hits 1 and 2; hit 0 is in the ledger already
        assert replay_hits(store) == 0
    assert not path.exists()
    keys = sorted(e.cache_key for e in _events())
    assert keys == sorted(f"{i:064x}" for i in (0, 1, 2, 100))  # each once


REPLAYER = """
import sys
from wattwise.store import open_store, replay_hits
sys.stdin.readline()  # both start, then replay at once
with open_store() as store:
    print(replay_hits(store), flush=True)
"""


def test_two_processes_replaying_at_once_book_each_hit_once(
    isolated_project: Path, state: Path,
) -> None:
    ledger = _ledger_holding(1000)
    files = [_keeper(ledger, 100 * n, 40, landed=0) for n in range(3)]
    assert _waiting(state) == 120
    procs = [
        subprocess.Popen([sys.executable, "-c", REPLAYER], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]  # fmt: skip
    outs = []
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        outs.append(int(out))
    assert sum(outs) == 120
    assert not any(p.exists() for p in files)
    events = _events()
    assert len(events) == 121 and len({e.cache_key for e in events}) == 121


WORK = """
import sys
import wattwise

@wattwise.cached
def double(x):
    return 2 * x

print(double(21), flush=True)
"""


def _run_work(project: Path) -> subprocess.CompletedProcess[str]:
    """``WORK`` (one call of a cached function) run in ``project`` as a new process."""
    return subprocess.run([sys.executable, str(project / "work.py")], cwd=project,
                          capture_output=True, text=True, timeout=300, check=False)  # fmt: skip


@pytest.fixture
def filled(isolated_project: Path, state: Path) -> Path:
    """The project once a first ``WORK`` process filled the cache (the miss, measured), with
    the state folder of ``state`` (where its children keep hits)."""
    (isolated_project / "work.py").write_text(WORK)
    filled = _run_work(isolated_project)
    assert (filled.returncode, filled.stdout) == (0, "42\n"), filled.stderr
    return isolated_project


def test_a_process_whose_ledger_is_held_exits_promptly_and_the_next_one_books_its_hit(
    filled: Path, state: Path,
) -> None:
    holder = sqlite3.connect(filled / ".wattwise" / "ledger.db", isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")
        started = time.monotonic()
        hit = _run_work(filled)
        took = time.monotonic() - started
        holder.execute("ROLLBACK")
    finally:
        holder.close()
    assert (hit.returncode, hit.stdout) == (0, "42\n"), hit.stderr
    assert took < BOUND_S, f"the process took {took:.1f} s on a locked ledger"
    assert "did not take the booking of a hit of" in hit.stderr
    assert "1 cache hit(s) not booked in the ledger yet" in hit.stderr
    assert f"1 kept in the spool {state}" in hit.stderr
    assert _events() == []  # the lock was held until the process ended
    assert _waiting(state) == 1
    again = _run_work(filled)  # the next process: its own hit lands, then it books the kept one
    assert (again.returncode, again.stdout) == (0, "42\n"), again.stderr
    assert "StoreWarning" not in again.stderr
    events = _events()
    assert len(events) == 2 and len({e.at for e in events}) == 2  # two hits, each once
    assert not list(state.glob("reuse-*.hits"))


def test_doctor_repair_and_a_tracked_run_book_the_hits_kept_by_a_process_that_is_gone(
    isolated_project: Path, state: Path,
) -> None:
    ledger = _ledger_holding(1000)
    _keeper(ledger, 0, 2, landed=0)
    repaired = subprocess.run(
        [sys.executable, "-m", "wattwise", "doctor", "--repair", "--json"],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert repaired.returncode == 0, repaired.stderr
    done = json.loads(repaired.stdout)
    assert (done["hits_booked"], done["hits_left"]) == (2, 0)
    assert len(_events()) == 3
    # A tracked run's housekeeping (on its writer thread, at its start) does the same.
    _keeper(ledger, 10, 3, landed=1)
    with wattwise.track("after", meters=[FakeMeter({"cpu:0": 20.0})]):
        _wait_for(lambda: not list(state.glob("reuse-*.hits")), 120, "the kept hits booked")
    assert len(_events()) == 6  # 3 + hits 10, 11, 12, each once


def test_a_hit_on_a_ledger_that_hangs_is_kept_on_local_disk_and_booked_later(
    filled: Path, state: Path,
) -> None:
    """A dead mount for real: a named pipe at the ledger's path, whose open() never returns."""
    ledger = filled / ".wattwise" / "ledger.db"
    aside = filled / "ledger.db.aside"
    for suffix in ("-wal", "-shm"):
        assert not ledger.with_name(ledger.name + suffix).exists()
    ledger.rename(aside)
    os.mkfifo(ledger)
    try:
        started = time.monotonic()
        hit = _run_work(filled)
        took = time.monotonic() - started
    finally:
        ledger.unlink()
        aside.rename(ledger)
    assert (hit.returncode, hit.stdout) == (0, "42\n"), hit.stderr
    assert took < BOUND_S, f"the process took {took:.1f} s on a hung ledger"
    assert f"1 kept in the spool {state}" in hit.stderr
    assert not (ledger.parent / "spool").exists()  # local disk, not the ledger's folder
    assert _waiting(state) == 1 and _events() == []
    again = _run_work(filled)
    assert (again.returncode, again.stdout) == (0, "42\n"), again.stderr
    assert len(_events()) == 2 and not list(state.glob("reuse-*.hits"))


def test_a_kept_file_cut_short_by_a_crash_books_its_complete_hits(
    isolated_project: Path, state: Path,
) -> None:
    ledger = _ledger_holding(1000)
    path = _keeper(ledger, 0, 2, landed=0)
    with path.open("ab") as handle:  # a third hit's line, cut short mid-write
        handle.write(b'{"event": {"at": 1.0, "cache_key": "')
    kept = read_kept_hits(path)
    assert kept is not None and len(kept.waiting) == 2
    with open_store() as store:
        assert replay_hits(store) == 2
    assert sorted(e.cache_key for e in _events()) == sorted(
        f"{i:064x}" for i in (0, 1, 1000)
    )

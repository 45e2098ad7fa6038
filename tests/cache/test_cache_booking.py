"""A cache hit never waits on the ledger: its booking is handed to a thread, bounded.

The real case: another process holds the SQLite ledger's write lock (the contract suite's
``blocked`` hook does the same), so a write waits the busy timeout (60 s) before it fails.
A hit then returns at once, its booking goes on in the background, and lands once the
ledger is free. The booker's own rules (no wait once stuck, a bounded queue, a bounded
wait at exit) are checked on writes that block on an event the test releases.
"""

from __future__ import annotations

import logging
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
from wattwise.cache._booking import Booker
from wattwise.exceptions import StoreWarning
from wattwise.store import ReuseEvent, open_store
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


def test_a_hit_returns_while_another_process_holds_the_ledger(isolated_project: Path) -> None:
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
        assert "did not take the booking of a hit of" in str(warned.message)
        assert "double" in str(warned.message) and warned.filename == __file__
        holder.execute("ROLLBACK")  # the ledger is free: both bookings land
    finally:
        holder.close()
    _wait_for(lambda: len(_events()) == 2, 120, "the two bookings")
    events = _events()
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
    with pytest.warns(StoreWarning, match="e was not booked in the ledger: 3 bookings"):
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


WORK = """
import sys
import wattwise

@wattwise.cached
def double(x):
    return 2 * x

print(double(21), flush=True)
"""


def test_a_process_whose_ledger_is_held_exits_promptly_and_says_the_hit_was_not_booked(
    isolated_project: Path,
) -> None:
    script = isolated_project / "work.py"
    script.write_text(WORK)

    def run() -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, str(script)], cwd=isolated_project,
                              capture_output=True, text=True, timeout=300,
                              check=False)  # fmt: skip

    filled = run()  # the miss: a cache-fill run, then the entry
    assert (filled.returncode, filled.stdout) == (0, "42\n"), filled.stderr
    holder = sqlite3.connect(isolated_project / ".wattwise" / "ledger.db", isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")
        started = time.monotonic()
        hit = run()
        took = time.monotonic() - started
        holder.execute("ROLLBACK")
    finally:
        holder.close()
    assert (hit.returncode, hit.stdout) == (0, "42\n"), hit.stderr
    assert took < BOUND_S, f"the process took {took:.1f} s on a locked ledger"
    assert "did not take the booking of a hit of" in hit.stderr
    assert "1 cache hit(s) not booked in the ledger" in hit.stderr
    assert _events() == []  # said, not booked: the lock was held until the process ended

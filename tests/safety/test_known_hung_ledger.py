"""Once a ledger is known to hang, later runs in the process stop paying the wait.

A run waits at most ``START_TIMEOUT_S`` for its first write and ``WATTWISE_FINAL_WRITE_S``
for its final one (``tests/safety/test_safety_hung_ledger.py``). Once one run's write to a
ledger has not come back in time, later runs to that ledger wait only ``PROBE_WAIT_S``
for theirs, until a write to it is seen to come back; then runs write normally again.
Nothing is lost: what could not be written is spooled and merged as always.

The hang is real: a named pipe at the ledger's path (``open()`` of it never returns, as on
a dead network mount), in a subprocess that runs the runs one after another, or a real
SQLite store whose ``insert_run`` blocks until the test releases it.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import wattwise
from wattwise.exceptions import StoreError, StoreWarning
from wattwise.store import RunRecord, RunStatus, SQLiteRunStore, merge_spools
from wattwise.testing import FakeMeter
from wattwise.tracking._handoff import known_hung

#: ``WATTWISE_FINAL_WRITE_S`` here: long enough that paying it again is plain in the totals.
FINAL_WAIT_S = "4"
#: How long anything in these tests may take on a loaded machine before it is a failure.
DEADLINE_S = 120.0

RUNS = textwrap.dedent("""
    import json, os, sys, time, warnings
    import wattwise
    from wattwise.store import SQLiteRunStore
    from wattwise.testing import FakeMeter
    from wattwise.tracking._handoff import PROBE_WAIT_S, final_wait_s
    from wattwise.tracking._writer import START_TIMEOUT_S

    ledger, n, recover_at = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])

    def in_ledger(run_id):
        if not os.path.exists(ledger):
            return False
        reader = SQLiteRunStore(ledger)
        try:
            return any(r.id == run_id for r in reader.list_runs())
        except Exception:  # being created by the run's writer thread right now
            return False
        finally:
            reader.close()

    runs = []
    for i in range(n):
        if i == recover_at:  # the mount comes back: the path is free, a real file is made
            os.rename(ledger, ledger + ".dead")
        began = time.monotonic()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with wattwise.track(f"r{i}", store=ledger, meters=[FakeMeter({"gpu:0": 20.0})],
                                interval_s=0.05, flush_s=0.1) as run:
                run.log(step=i, loss=1.0 / (i + 1))
                if i == recover_at:  # its start write is the probe: wait until it lands
                    deadline = time.monotonic() + 120
                    while not in_ledger(run.id) and time.monotonic() < deadline:
                        time.sleep(0.05)
        runs.append({
            "id": run.id, "took_s": time.monotonic() - began, "recorded_in": run.recorded_in,
            "energy_j": run.result.energy_j,
            "said": [str(w.message) for w in caught if "wattwise" in str(w.message)],
        })
    print(json.dumps({"runs": runs, "start_wait_s": START_TIMEOUT_S,
                      "final_wait_s": final_wait_s(), "probe_s": PROBE_WAIT_S}), flush=True)
""")


@pytest.fixture
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The user's state folder (where a run whose ledger hangs spools), private to the test."""
    folder = tmp_path / "state"
    monkeypatch.setenv("XDG_STATE_HOME", str(folder))
    monkeypatch.setenv("WATTWISE_FINAL_WRITE_S", FINAL_WAIT_S)
    return folder


def _spools(state: Path) -> list[Path]:
    return sorted((state / "wattwise" / "spool").glob("*.jsonl"))


def _runs(project: Path, ledger: Path, n: int, recover_at: int) -> dict[str, Any]:
    """Run ``n`` runs one after another in a subprocess; what it printed."""
    script = project / "runs.py"
    script.write_text(RUNS)
    done = subprocess.run([sys.executable, str(script), str(ledger), str(n), str(recover_at)],
                          cwd=project, capture_output=True, text=True, timeout=DEADLINE_S,
                          check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    outcome: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    return outcome


def _repair_and_check(project: Path, ledger: Path, state: Path, runs: list[Any]) -> None:
    """``doctor --repair`` brings every run into the ledger, finished, with its energy and
    its metric point; no spool is left."""
    repaired = subprocess.run([sys.executable, "-m", "wattwise", "doctor", "--repair"],
                              cwd=project, capture_output=True, text=True, timeout=DEADLINE_S,
                              check=False)  # fmt: skip
    assert repaired.returncode == 0, repaired.stderr
    store = SQLiteRunStore(ledger)
    try:
        stored = {r.id: r for r in store.list_runs()}
        assert set(stored) == {r["id"] for r in runs}
        for i, run in enumerate(runs):
            got = stored[run["id"]]
            assert got.status is RunStatus.FINISHED and got.name == f"r{i}"
            assert got.energy_j == pytest.approx(run["energy_j"]) and got.energy_j > 0
            assert {(m[0], m[1]) for m in store.metrics(run["id"])} == {(i, "loss")}
    finally:
        store.close()
    assert not _spools(state)


def test_ten_runs_on_a_hung_ledger_pay_the_wait_once_and_all_land_after_repair(
    isolated_project: Path, state: Path
) -> None:
    ledger = isolated_project / ".wattwise" / "ledger.db"
    os.mkfifo(ledger)  # open() blocks for ever: a dead mount, for real
    outcome = _runs(isolated_project, ledger, 10, -1)
    runs = outcome["runs"]
    per_run_wait = outcome["start_wait_s"] + outcome["final_wait_s"]
    assert outcome["final_wait_s"] == float(FINAL_WAIT_S)
    first, later = runs[0], runs[1:]
    # The first run found the hang: it waited its final write out, as before.
    assert first["took_s"] >= outcome["final_wait_s"]
    (said,) = first["said"]
    assert f"did not finish within {outcome['final_wait_s']:g} s" in said
    # The nine others did not wait again: together they took less than a third of the waits
    # each would have paid (before: each took at least per_run_wait).
    assert sum(r["took_s"] for r in later) < len(later) * per_run_wait / 3, runs
    for run in later:
        (said,) = run["said"]
        assert f"did not finish within {outcome['probe_s']:g} s" in said
        assert "earlier in this process has not come back" in said
    assert all(r["recorded_in"] == "spool" for r in runs)
    assert len(_spools(state)) == 10

    ledger.unlink()  # the mount comes back (as an empty folder)
    _repair_and_check(isolated_project, ledger, state, runs)


def test_once_the_ledger_answers_again_later_runs_write_to_it(
    isolated_project: Path, state: Path
) -> None:
    ledger = isolated_project / ".wattwise" / "ledger.db"
    os.mkfifo(ledger)
    outcome = _runs(isolated_project, ledger, 6, 3)  # runs 0-2 hang, then a real file
    runs = outcome["runs"]
    assert [r["recorded_in"] for r in runs] == ["spool"] * 3 + ["ledger"] * 3, runs
    for run in runs[3:]:  # written normally: no warning, nothing spooled
        assert run["said"] == [], run
    # The runs after the first that found the ledger answering paid no wait: a healthy
    # ledger answers their start write in time (the first one probed it).
    assert all(r["took_s"] < outcome["final_wait_s"] for r in runs[4:]), runs
    _repair_and_check(isolated_project, ledger, state, runs)


class HangingStore(SQLiteRunStore):
    """A real SQLite ledger whose ``insert_run`` blocks until the test releases it."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.release = threading.Event()

    def insert_run(self, run: RunRecord) -> None:
        self.release.wait(DEADLINE_S)
        super().insert_run(run)


@pytest.fixture
def hanging(isolated_project: Path) -> Iterator[HangingStore]:
    store = HangingStore(isolated_project / ".wattwise" / "ledger.db")
    yield store
    store.release.set()  # let the writer threads the test left behind end


def _wait_for(condition: Any, what: str) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.02)


def _track(store: Any, name: str, **kwargs: Any) -> wattwise.Run:
    return wattwise.track(name, store=store, interval_s=0.05, flush_s=0.1,
                          meters=[FakeMeter({"gpu:0": 20.0})], **kwargs)  # fmt: skip


def test_the_stuck_write_returning_ends_the_short_waits(
    state: Path, hanging: HangingStore
) -> None:
    key = ledger_key_of(hanging)
    assert not known_hung(key)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with _track(hanging, "first") as first:
            pass
        assert known_hung(key)  # its start write has not come back
        with _track(hanging, "second") as second:
            pass
        said = [str(w.message) for w in caught if issubclass(w.category, StoreWarning)]
    assert first.recorded_in == second.recorded_in == "spool"
    assert "within 0.05 s" in said[-1] and "has not come back" in said[-1], said
    hanging.release.set()  # the stuck writes return: the ledger answers again
    _wait_for(lambda: not known_hung(key), "the mark outlived the write that set it")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with _track(hanging, "third") as third:
            third.log(step=1, acc=0.5)
    assert third.recorded_in == "ledger"
    assert not [w for w in caught if issubclass(w.category, StoreWarning)]
    # Nothing lost: the first two runs' spools merge as always.
    store = SQLiteRunStore(hanging.path)
    try:
        merge_spools(store)
        stored = {r.name: r for r in store.list_runs()}
        assert set(stored) == {"first", "second", "third"}
        got = [(r.name, r.status, r.energy_j) for r in stored.values()]
        assert all(r.status is RunStatus.FINISHED and r.energy_j > 0 for r in stored.values()), got
    finally:
        store.close()


def ledger_key_of(store: SQLiteRunStore) -> str:
    return store.url  # what ledger_key() keys a run's writer by


def test_strict_mode_still_waits_its_full_start_write_and_raises(
    state: Path, hanging: HangingStore
) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", StoreWarning)
        with _track(hanging, "first"):
            pass
    assert known_hung(ledger_key_of(hanging))
    with pytest.raises(StoreError, match=r"did not finish within 0\.5 s"):
        _track(hanging, "strict", strict=True).start()


def test_a_locked_ledger_is_not_marked_as_hung(state: Path, isolated_project: Path) -> None:
    ledger = isolated_project / ".wattwise" / "ledger.db"
    SQLiteRunStore(ledger).close()
    store = SQLiteRunStore(ledger)
    key = ledger_key_of(store)
    store.close()
    holder = sqlite3.connect(ledger, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")  # another process's lock, held for the whole run
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", StoreWarning)
            with _track(str(ledger), "locked") as run:
                pass
        assert run.recorded_in == "spool"
        # A lock fails within its busy timeout: every call came back, so nothing is marked
        # (a start write that took just over its wait is unmarked when it returns).
        _wait_for(lambda: not known_hung(key), "a locked ledger was left marked as hung")
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    with _track(str(ledger), "free") as free:
        pass
    assert free.recorded_in == "ledger"


def test_a_healthy_ledger_is_never_marked(isolated_project: Path) -> None:
    ledger = isolated_project / ".wattwise" / "ledger.db"
    for name in ("a", "b"):
        with _track(str(ledger), name) as run:
            run.log(step=0, x=1.0)
        assert run.recorded_in == "ledger"
    store = SQLiteRunStore(ledger)
    try:
        assert not known_hung(store.url)
    finally:
        store.close()

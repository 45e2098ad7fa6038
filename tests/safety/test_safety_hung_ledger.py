"""A ledger that hangs (a dead network mount) never holds the job up, and nothing is lost.

A dead mount does not fail, it blocks: ``open()`` never returns, and no SQLite busy timeout
applies. Two real ways to make that here:

* a named pipe (``os.mkfifo``) at the ledger's path: ``open()`` of a FIFO blocks until a
  writer opens the other end, which nobody does;
* a real SQLite store whose ``insert_run`` (or ``flush_run``) sleeps 60 s.

Each time: the job starts promptly, ``wattwise run`` returns the command's own exit code
within a bound, ``finish()`` returns its result, and the run is in the spool (the user's
state folder, on local disk) and, once the fault is gone, in the ledger with its energy
and metrics.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

import wattwise
from wattwise.exceptions import StoreError, StoreWarning
from wattwise.store import (
    RunRecord,
    RunStatus,
    SQLiteRunStore,
    merge_spools,
    read_spool,
)
from wattwise.testing import FakeMeter

LEDGER = Path(".wattwise") / "ledger.db"
FINAL_WAIT_S = 1.0

JOB = textwrap.dedent("""
    import pathlib, sys, time
    pathlib.Path(sys.argv[1]).write_text(repr(time.time()))
    end = time.process_time() + 0.3
    while time.process_time() < end:
        pass
    sys.exit(int(sys.argv[2]))
""")


@pytest.fixture
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The user's state folder (where a hung run spools), private to the test."""
    folder = tmp_path / "state"
    monkeypatch.setenv("XDG_STATE_HOME", str(folder))
    monkeypatch.setenv("WATTWISE_FINAL_WRITE_S", str(FINAL_WAIT_S))
    return folder


def _spools(state: Path) -> list[Path]:
    return sorted((state / "wattwise" / "spool").glob("*.jsonl"))


def _wattwise_run(argv: Sequence[str], started: Path) -> tuple[subprocess.CompletedProcess[str],
                                                               float, float]:  # fmt: skip
    """Run ``wattwise run -- argv``; return it, the command's start delay and the total."""
    env = {**os.environ, "WATTWISE_INTERVAL_S": "0.1", "WATTWISE_FLUSH_S": "0.3"}
    launched = time.time()
    done = subprocess.run([sys.executable, "-m", "wattwise", "run", "--", *argv], env=env,
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    total = time.time() - launched
    delay = float(started.read_text()) - launched if started.exists() else -1.0
    return done, delay, total


def test_a_ledger_whose_open_blocks_holds_neither_the_start_nor_the_exit(
    state: Path, tmp_path: Path
) -> None:
    job = tmp_path / "job.py"
    job.write_text(JOB)
    # Baseline on a healthy ledger, on this machine now (its load changes start-up times).
    healthy, base_delay, _ = _wattwise_run([sys.executable, str(job), str(tmp_path / "a"), "0"],
                                           tmp_path / "a")  # fmt: skip
    assert healthy.returncode == 0, healthy.stderr
    LEDGER.rename(tmp_path / "healthy.db")

    os.mkfifo(LEDGER)  # open() blocks for ever: a dead mount, for real
    done, delay, total = _wattwise_run([sys.executable, str(job), str(tmp_path / "b"), "3"],
                                       tmp_path / "b")  # fmt: skip
    assert done.returncode == 3, done.stderr  # the command's own code
    assert "Traceback" not in done.stderr
    # wattwise waits at most 0.5 s for the first insert, then starts the command.
    # (The bound leaves room for a loaded machine, whose load changes between the two
    # start-ups: before, it was for ever.)
    assert 0 <= delay < base_delay + 10.0, (delay, base_delay)
    # ... and at most WATTWISE_FINAL_WRITE_S (plus the spool, at most 2 s) at the end.
    assert total < delay + 0.3 + FINAL_WAIT_S + 2.0 + 10.0, total
    said = [line for line in done.stderr.splitlines() if line.startswith("wattwise: warning:")]
    assert len(said) == 1 and "did not finish within 1 s" in said[0], said
    (spooled,) = _spools(state)
    assert str(spooled) in said[0] and "spooled in" in done.stderr
    content = read_spool(spooled)
    assert content is not None and content.ended
    assert content.header["ledger"] == os.path.abspath(LEDGER)

    LEDGER.unlink()  # the mount comes back (as an empty folder)
    repair = subprocess.run([sys.executable, "-m", "wattwise", "doctor", "--repair"],
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    assert repair.returncode == 0, repair.stderr
    store = SQLiteRunStore(LEDGER)
    (run,) = store.list_runs()
    assert run.status is RunStatus.FAILED and run.exit_code == 3 and run.energy_j > 0
    assert any("spooled to" in note for note in run.record["notes"])
    assert not _spools(state)
    store.close()


def test_wattwise_run_true_exits_promptly_on_a_ledger_whose_open_blocks(state: Path) -> None:
    os.mkfifo(LEDGER)
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "wattwise", "run", "--", "true"],
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert time.monotonic() - started < 30  # for ever, before
    assert len(_spools(state)) == 1


class HangingStore(SQLiteRunStore):
    """A real SQLite ledger whose chosen writes sleep 60 s first (a write that hangs)."""

    def __init__(self, path: Path, *, hang: Sequence[str], delay_s: float = 60.0) -> None:
        super().__init__(path)
        self.hang = set(hang)
        self.delay_s = delay_s
        self.release = threading.Event()

    def insert_run(self, run: RunRecord) -> None:
        if "insert_run" in self.hang:
            self.release.wait(self.delay_s)
        super().insert_run(run)

    def flush_run(self, run_id: str, fields: dict[str, Any], **kwargs: Any) -> None:
        if "flush_run" in self.hang:
            self.release.wait(self.delay_s)
        super().flush_run(run_id, fields, **kwargs)


@pytest.fixture
def hanging() -> Iterator[list[HangingStore]]:
    stores: list[HangingStore] = []
    yield stores
    for store in stores:  # let the writer threads the test left behind end
        store.release.set()


def _merged(state: Path, run_id: str) -> tuple[RunRecord, list[Any]]:
    """Merge the spool into the (healthy) ledger, as the next writer would."""
    store = SQLiteRunStore(LEDGER)
    merge_spools(store)
    run = store.get_run(run_id)
    metrics = store.metrics(run_id)
    store.close()
    return run, metrics


def test_an_insert_that_hangs_costs_the_start_half_a_second(
    state: Path, hanging: list[HangingStore]
) -> None:
    store = HangingStore(LEDGER, hang=["insert_run"])
    hanging.append(store)
    run = wattwise.track("t", store=store, interval_s=0.05, flush_s=0.1,
                         meters=[FakeMeter({"cpu:0": 20.0})])  # fmt: skip
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        began = time.monotonic()
        run.start()
        # 0.5 s, not the insert's 60 s (the rest is room for a loaded machine)
        assert time.monotonic() - began < 10.0
        run.log(step=1, acc=0.5)
        time.sleep(0.3)
        run.log(step=2, acc=0.6)
        ending = time.monotonic()
        result = run.finish()
        assert time.monotonic() - ending < FINAL_WAIT_S + 10.0  # not the flush's 60 s
    said = [str(w.message) for w in caught if issubclass(w.category, StoreWarning)]
    assert len(said) == 1 and "did not finish within" in said[0], said
    assert result.energy_j > 0 and result.status == "finished"
    assert run.recorded_in == "spool"
    assert run.spooled_to is not None and run.spooled_to.parent == state / "wattwise" / "spool"
    merged, metrics = _merged(state, run.id)
    assert merged.status is RunStatus.FINISHED
    assert merged.energy_j == pytest.approx(result.energy_j)
    assert [m[2] for m in metrics] == [0.5, 0.6]


def test_flushes_that_hang_lose_no_metric_and_never_wait(
    state: Path, hanging: list[HangingStore]
) -> None:
    store = HangingStore(LEDGER, hang=["flush_run"])
    hanging.append(store)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", StoreWarning)
        with wattwise.track("t", store=store, interval_s=0.05, flush_s=0.05,
                            meters=[FakeMeter({"cpu:0": 20.0})]) as run:  # fmt: skip
            for step in range(5):
                began = time.monotonic()
                run.log(step=step, loss=1.0 / (step + 1))
                # under 0.5 s, the shortest wait wattwise has: a call that waited took at
                # least that long, so anything shorter waited for nothing
                assert time.monotonic() - began < 0.5
                time.sleep(0.2)  # flushes pile up behind the hung one: merged, not queued
    assert run.recorded_in == "spool"
    merged, metrics = _merged(state, run.id)
    assert merged.status is RunStatus.FINISHED and merged.energy_j > 0
    # The hung flush's points are spooled with the final state: none is missing.
    assert [m[0] for m in metrics] == [0, 1, 2, 3, 4]


def _in_ledger(run_id: str) -> bool:
    """Whether the run is in the ledger, as a reader opened now sees it."""
    reader = SQLiteRunStore(LEDGER)
    try:
        return any(r.id == run_id for r in reader.list_runs())
    finally:
        reader.close()


def test_a_slow_insert_completes_later_and_the_run_stays_in_the_ledger(
    state: Path, hanging: list[HangingStore]
) -> None:
    store = HangingStore(LEDGER, hang=["insert_run"])
    hanging.append(store)
    run = wattwise.track("t", store=store, interval_s=0.05, flush_s=0.1,
                         meters=[FakeMeter({"cpu:0": 20.0})])  # fmt: skip
    with run:
        # The insert is held until this test releases it: the start did not wait it out.
        assert not store.release.is_set()
        run.log(step=1, acc=0.5)
        store.release.set()  # the insert completes now, mid-run; flushes follow it
        deadline = time.monotonic() + 120  # however late a loaded machine writes it
        while not _in_ledger(run.id):
            assert time.monotonic() < deadline, "the insert never reached the ledger"
            time.sleep(0.05)
    assert run.recorded_in == "ledger" and not _spools(state)
    stored = SQLiteRunStore(LEDGER)
    assert stored.get_run(run.id).status is RunStatus.FINISHED
    assert [m[2] for m in stored.metrics(run.id)] == [0.5]
    stored.close()


def test_strict_mode_raises_when_the_first_write_hangs(
    state: Path, hanging: list[HangingStore]
) -> None:
    store = HangingStore(LEDGER, hang=["insert_run"])
    hanging.append(store)
    began = time.monotonic()
    with pytest.raises(StoreError, match=r"did not finish within 0\.5 s"):
        wattwise.track("t", store=store, strict=True, meters=[FakeMeter({"cpu:0": 1.0})]).start()
    assert time.monotonic() - began < 10.0  # 0.5 s, not the insert's 60 s (and some load)


def test_a_bad_final_wait_setting_is_said_once_and_the_default_is_used(
    state: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WATTWISE_FINAL_WRITE_S", "soon")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with wattwise.track("t", meters=[FakeMeter({"cpu:0": 1.0})]) as run:
            pass
    said = [str(w.message) for w in caught if issubclass(w.category, StoreWarning)]
    assert len(said) == 1 and "WATTWISE_FINAL_WRITE_S = 'soon'" in said[0]
    assert run.recorded_in == "ledger"


CHILD_JOB = textwrap.dedent("""
    import pathlib, sys, time
    import wattwise
    from wattwise.tracking import use_data
    pathlib.Path(sys.argv[1]).write_text(repr(time.time()))
    calls = []
    for step in range(3):
        began = time.monotonic()
        wattwise.log(step=step, acc=0.5 + step / 10)
        calls.append(time.monotonic() - began)
    began = time.monotonic()
    use_data(b"some bytes", name="tiny")
    calls.append(time.monotonic() - began)
    print("slowest call", max(calls), "total", sum(calls), flush=True)
    sys.exit(5)
""")


def test_the_jobs_own_log_calls_never_hang_on_a_ledger_whose_open_blocks(
    state: Path, tmp_path: Path
) -> None:
    job = tmp_path / "child.py"
    job.write_text(CHILD_JOB)
    os.mkfifo(LEDGER)
    done, delay, total = _wattwise_run([sys.executable, str(job), str(tmp_path / "s")],
                                       tmp_path / "s")  # fmt: skip
    assert done.returncode == 5, done.stderr  # before: the first wattwise.log() hung for ever
    assert delay >= 0  # the job ran (it wrote its start time)
    assert "Traceback" not in done.stderr
    slowest, spent = (float(word) for word in done.stdout.split()[2::2])
    # The first hand-off waits its 0.5 s (not for ever); once the ledger is known to hang,
    # none waits: the other three together took less than one wait of 0.5 s would.
    assert slowest < 10.0 and spent - slowest < 0.4, done.stdout
    assert total < 30, total
    # The tracker's final state and the job's metrics: two spool files on local disk.
    assert len(_spools(state)) == 2, done.stderr
    LEDGER.unlink()
    repair = subprocess.run([sys.executable, "-m", "wattwise", "doctor", "--repair"],
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    assert repair.returncode == 0, repair.stderr
    store = SQLiteRunStore(LEDGER)
    (run,) = store.list_runs()
    assert run.status is RunStatus.FAILED and run.exit_code == 5 and run.energy_j > 0
    assert [(m[0], m[1]) for m in store.metrics(run.id)] == [(0, "acc"), (1, "acc"), (2, "acc")]
    assert not _spools(state)
    store.close()

"""The run's writer thread: hand-offs that never wait on the ledger, and nothing lost.

Real SQLite ledgers in a temporary project; a store whose writes wait on an event stands in
for a ledger that is slow or hangs.
"""

from __future__ import annotations

import threading
import time
import warnings
from pathlib import Path
from typing import Any

import pytest

import wattwise
from wattwise.exceptions import StoreError, StoreWarning
from wattwise.store import RunRecord, RunStatus, SQLiteRunStore
from wattwise.testing import FakeMeter
from wattwise.tracking._handoff import WriterThread
from wattwise.tracking._writer import LedgerWriter

LEDGER = Path(".wattwise") / "ledger.db"


class GatedStore(SQLiteRunStore):
    """A real ledger whose flushes wait until the gate opens (a slow network write)."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.gate = threading.Event()
        self.entered = threading.Event()  # a flush is in flight, waiting at the gate
        self.flushes: list[int] = []  # metric points per flush that reached the store

    def flush_run(self, run_id: str, fields: dict[str, Any], **kwargs: Any) -> None:
        self.entered.set()
        self.gate.wait(120)
        self.flushes.append(len(kwargs.get("metrics") or ()))
        super().flush_run(run_id, fields, **kwargs)


def _run(run_id: str) -> RunRecord:
    now = time.time()
    return RunRecord(id=run_id, name="r", kind="python", status=RunStatus.RUNNING,
                     started_at=now, heartbeat_at=now, host="h", pid=1)  # fmt: skip


def test_flushes_behind_a_slow_write_merge_into_one_and_keep_their_order() -> None:
    store = GatedStore(LEDGER)
    warned: list[str] = []
    writer = LedgerWriter("r1", store, owned=False, strict=False,
                          warn=lambda kind, text: warned.append(text))  # fmt: skip
    thread = WriterThread(writer, warn=lambda kind, text: warned.append(text))
    assert thread.insert(_run("r1"), wait_s=60)  # returns as soon as it is in

    def flush(step: int) -> None:
        thread.flush(({"heartbeat_at": time.time(), "energy_j": float(step)}, [], [],
                      [(step, "loss", 1.0 / (step + 1), time.time())]))  # fmt: skip

    flush(0)
    assert store.entered.wait(60), "the writer never took the first flush"
    for step in range(1, 6):  # the first is in flight behind the gate; five wait, merged
        flush(step)
    # No hand-off waited for the ledger: all six returned while the first write is held at
    # the gate (which only this test opens), and none reached the store. No clock involved.
    assert store.flushes == [] and not store.gate.is_set()
    store.gate.set()
    assert thread.finish(({"heartbeat_at": time.time(), "energy_j": 9.0,
                           "status": "finished"}, [], [], []), wait_s=60)  # fmt: skip
    # One in flight, the five behind it merged into one write (into the final one, when
    # finish() came before the writer took them), then the final write.
    assert store.flushes[0] == 1 and sum(store.flushes[1:]) == 5 and len(store.flushes) <= 3
    assert [m[0] for m in store.metrics("r1")] == [0, 1, 2, 3, 4, 5]
    assert store.get_run("r1").energy_j == 9.0 and not warned
    store.close()


class RefusingStore(SQLiteRunStore):
    """A real ledger that refuses its first ``n`` flushes (a lock held too long)."""

    def __init__(self, path: Path, n: int) -> None:
        super().__init__(path)
        self.refusals = n

    def flush_run(self, run_id: str, fields: dict[str, Any], **kwargs: Any) -> None:
        if self.refusals > 0:
            self.refusals -= 1
            msg = "database is locked (held by another process)"
            raise StoreError(msg)
        super().flush_run(run_id, fields, **kwargs)


def test_strict_mode_resends_a_refused_flush_with_the_next_one_not_in_a_loop() -> None:
    store = RefusingStore(LEDGER, n=3)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with wattwise.track("t", store=store, strict=True, interval_s=0.05, flush_s=0.05,
                            meters=[FakeMeter({"cpu:0": 20.0})]) as run:  # fmt: skip
            for step in range(4):
                run.log(step=step, acc=step / 10)
                time.sleep(0.1)
            deadline = time.monotonic() + 120  # a loaded machine flushes late: wait for it
            while store.refusals > 0:  # each refusal retried at a later periodic flush
                assert time.monotonic() < deadline, f"{store.refusals} refusals never retried"
                time.sleep(0.05)
    said = [str(w.message) for w in caught if issubclass(w.category, StoreWarning)]
    assert len(said) == 1 and "writing the run failed" in said[0], said
    assert store.refusals == 0  # three refusals, each retried at a later flush
    assert [m[0] for m in store.metrics(run.id)] == [0, 1, 2, 3]
    assert store.get_run(run.id).status is RunStatus.FINISHED
    store.close()


def _writer_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name == "wattwise-writer" and t.is_alive()}


def test_a_run_on_a_healthy_ledger_is_in_it_when_start_and_finish_return() -> None:
    before = _writer_threads()
    run = wattwise.track("t", meters=[FakeMeter({"cpu:0": 20.0})]).start()
    reader = SQLiteRunStore(LEDGER)
    assert reader.get_run(run.id).status is RunStatus.RUNNING  # the insert was waited for
    run.log(step=1, acc=0.5)
    run.finish()
    assert reader.get_run(run.id).status is RunStatus.FINISHED
    assert [m[2] for m in reader.metrics(run.id)] == [0.5]
    deadline = time.monotonic() + 60
    while _writer_threads() - before and time.monotonic() < deadline:
        time.sleep(0.01)  # its last step: closing the store, then the thread ends
    assert not _writer_threads() - before
    reader.close()


def test_a_run_that_cannot_start_leaves_no_writer_thread_behind() -> None:
    LEDGER.write_bytes(b"not a ledger" * 400)  # damaged: strict start() raises
    before = _writer_threads()
    with pytest.raises(StoreError, match="damaged"):
        wattwise.track("t", strict=True, meters=[FakeMeter({"cpu:0": 1.0})]).start()
    deadline = time.monotonic() + 60
    while _writer_threads() - before and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not _writer_threads() - before


@pytest.mark.parametrize("value", ["0", "-1", "nan", "inf", "soon"])
def test_a_final_wait_that_is_not_a_positive_number_falls_back_to_the_default(
    value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from wattwise.tracking._handoff import FINAL_WAIT_S, final_wait_s

    monkeypatch.setenv("WATTWISE_FINAL_WRITE_S", value)
    said: list[str] = []
    assert final_wait_s(lambda kind, text: said.append(text)) == FINAL_WAIT_S
    assert len(said) == 1 and f"{value!r} is not valid" in said[0]
    monkeypatch.setenv("WATTWISE_FINAL_WRITE_S", "2.5")
    assert final_wait_s() == 2.5

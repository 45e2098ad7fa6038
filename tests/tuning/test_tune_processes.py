"""Trials in worker processes, each metered there; a worker killed mid-trial."""

from __future__ import annotations

import os
import time
from typing import Any

import wattwise
from wattwise.store import RunStatus, open_store
from wattwise.testing import FakeMeter

POWER_W = 50.0


def flushed(run_id: str, energy_j: float) -> None:
    """Wait until the ledger holds at least ``energy_j`` for the run (its writer thread
    flushes every ``flush_s``, as late as a loaded machine lets it; the test checks it)."""
    store = open_store()
    deadline = time.monotonic() + 120
    while store.get_run(run_id).energy_j < energy_j and time.monotonic() < deadline:
        time.sleep(0.02)


def dies_in_trial_1(trial: Any) -> float:
    x = trial.suggest_float("x", 0.0, 1.0)
    for step in range(4):
        time.sleep(0.1)
        trial.report(x, step)
        if trial.number == 1 and step == 2:
            flushed(trial.run.id, POWER_W * 0.1)  # some of what it spent is in the ledger
            os._exit(3)  # the worker process dies mid-trial, without cleaning up
    return x


def test_worker_processes_meter_their_trials_and_survive_a_dead_worker() -> None:
    result = wattwise.tune(
        dies_in_trial_1, n_trials=5, executor="processes", n_workers=2, seed=0,
        run_options={"meters": [FakeMeter({"gpu:0": POWER_W})], "interval_s": 0.05,
                     "flush_s": 0.1, "emit_warnings": False},
    )  # fmt: skip
    assert result.stop_reason == "n_trials"
    assert [t.state for t in result.trials] == ["complete", "fail", "complete", "complete",
                                                "complete"]  # fmt: skip
    dead = result.trials[1]
    assert dead.error is not None and "worker process died (exit code 3)" in dead.error
    store = open_store()
    record = store.get_run(dead.run_id)
    assert record.status is RunStatus.CRASHED  # the reaper's word for it
    assert record.record["extra"]["trial"]["state"] == "fail"
    assert record.energy_j >= POWER_W * 0.1  # what it spent, as last flushed
    assert dead.energy_j == record.energy_j
    trials = [store.get_run(t.run_id) for t in result.trials]
    assert all(r.pid != os.getpid() for r in trials)  # metered in the workers
    assert len({r.pid for r in trials}) >= 3  # two workers, and one started after the death
    driver = store.get_run(result.study_id)
    assert driver.record["extra"]["study"]["executor"] == "processes"
    assert driver.record["extra"]["study"]["n_trials"]["fail"] == 1
    assert result.study.trials[1].state.name == "FAIL"

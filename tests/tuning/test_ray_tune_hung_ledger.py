"""A user's own Ray Tune loop never blocks on a ledger that is locked or hangs, and loses nothing.

The two faults, for real (as in ``test_tune_hung_ledger.py``), on a real local Ray cluster:

* another connection (this test) holds the SQLite ledger's write lock (``BEGIN EXCLUSIVE``)
  for the whole experiment;
* the ledger is a named pipe nobody writes: opening it never returns (a dead mount).

Each time a small ``tune.Tuner`` (4 trials of a function trainable wrapped by
``track_trainable``, with ``WattwiseCallback`` and ``BudgetStopper``) runs: ``tuner.fit()``
returns within the bound with every trial's results (their energy added), and once the fault
is gone, ``wattwise doctor --repair`` brings every trial run and the study run into the
ledger from the spool.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import wattwise.ray_tune as wr
from ledger_faults import locked_ledger, repair, runs_in
from ray_support import start_local_ray
from wattwise.store import RunStatus, SQLiteRunStore
from wattwise.testing import FakeMeter
from wattwise.tuning import StudyRecord, TrialRecord

pytestmark = pytest.mark.ray
ray = pytest.importorskip("ray")
tune = pytest.importorskip("ray.tune", exc_type=ImportError)  # pip install 'ray[tune]'

#: How long ``tuner.fit()`` may take: generous for a loaded 2-core machine. A fit that waited
#: on the ledger would not return at all (the lock and the hang outlast it).
BOUND_S = 240.0
N_TRIALS = 4
REPORTS = 3
#: A trial's run gives up on the ledger after this many seconds at its end (then spools).
FINAL_WAIT_S = "1"


@pytest.fixture(scope="module")
def spool_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A local cluster of 2 CPUs whose workers spool into a state folder of this module's
    (the user's state folder: where a run whose ledger hangs keeps its records)."""
    home = tmp_path_factory.mktemp("state")
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    env = {"XDG_STATE_HOME": str(home), "WATTWISE_FINAL_WRITE_S": FINAL_WAIT_S,
           "WATTWISE_REGION": "FR"}  # fmt: skip
    start_local_ray(ray, runtime_env={"env_vars": env})
    yield home
    ray.shutdown()


@pytest.fixture
def state(spool_home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The driver's state folder: the workers' (so that ``doctor --repair`` finds both)."""
    monkeypatch.setenv("XDG_STATE_HOME", str(spool_home))
    monkeypatch.setenv("WATTWISE_FINAL_WRITE_S", FINAL_WAIT_S)
    return spool_home


def steps(config: dict[str, Any]) -> None:
    """A tiny trainable: 3 results of 20 ms each."""
    for step in range(REPORTS):
        time.sleep(0.02)
        tune.report({"loss": config["x"] * (step + 1), "step": step})


def _fit(ledger: Path, tmp_path: Path) -> tuple[Any, wr.WattwiseCallback, float]:
    """Build and fit the Tuner on a separate thread, waited for at most :data:`BOUND_S`
    (a fit that hangs on the ledger fails the test instead of hanging it)."""
    out: dict[str, Any] = {}

    def fit() -> None:
        try:
            began = time.monotonic()
            callback = wr.WattwiseCallback(store=str(ledger))
            trainable = wr.track_trainable(
                steps, store=str(ledger), meters=[FakeMeter({"gpu:0": 20.0})],
                interval_s=0.05, flush_s=0.1, emit_warnings=False,
            )  # fmt: skip
            tuner = tune.Tuner(
                trainable, param_space={"x": tune.grid_search([1.0, 2.0, 3.0, 4.0])},
                tune_config=tune.TuneConfig(metric="loss", mode="min", reuse_actors=False),
                run_config=tune.RunConfig(
                    storage_path=str(tmp_path / "ray_results"), verbose=0,
                    callbacks=[callback], stop=wr.BudgetStopper(budget_kwh=1.0),
                ),
            )  # fmt: skip
            out["grid"] = tuner.fit()
            out["took"] = time.monotonic() - began
            out["callback"] = callback
        except BaseException as err:
            out["error"] = err

    thread = threading.Thread(target=fit, name="test-fit", daemon=True)
    thread.start()
    thread.join(BOUND_S)
    if thread.is_alive():
        where = "".join(traceback.format_stack(sys._current_frames()[thread.ident or 0]))
        pytest.fail(f"tuner.fit() on this ledger did not return within {BOUND_S:g} s: it "
                    f"waited on the ledger, here:\n{where}")  # fmt: skip
    if "error" in out:
        raise out["error"]
    return out["grid"], out["callback"], out["took"]


def _check_fit(grid: Any, callback: Any) -> dict[float, tuple[str, float]]:
    """Every trial ran to its end with its own results and their energy; the callback kept
    its books from the results. The trials' run ids and last energy, by x."""
    assert len(grid) == N_TRIALS and not grid.errors
    last: dict[float, tuple[str, float]] = {}
    for result in grid:
        frame = result.metrics_dataframe
        x = result.config["x"]
        assert list(frame["loss"]) == [x * (s + 1) for s in range(REPORTS)]  # untouched
        energies = list(frame[wr.ENERGY_KEY])
        assert len(energies) == REPORTS and all(e > 0 for e in energies)
        last[x] = (result.metrics[wr.RUN_KEY], energies[-1])
    books = callback.trials
    assert len(books) == N_TRIALS
    assert {b.run_id for b in books.values()} == {r for r, _ in last.values()}
    assert all(b.state == "complete" and b.reports == REPORTS for b in books.values())
    record = callback.record
    assert record is not None and record.n_trials["complete"] == N_TRIALS
    assert sorted(record.trial_run_ids) == sorted(r for r, _ in last.values())
    return last


def _check_ledger(ledger: Path, callback: Any, last: dict[float, tuple[str, float]]) -> None:
    """After repair: the study run, with its record, and every trial run, finished."""
    store = SQLiteRunStore(ledger)
    try:
        study = store.get_run(callback.study_id)
        assert study.kind == "study" and study.status is RunStatus.FINISHED
        record = StudyRecord.from_record(study.record)
        assert record is not None and record == callback.record
        runs = {r.id: r for r in store.list_runs(study_id=study.id)}
        assert set(runs) == {r for r, _ in last.values()}
        for x, (run_id, energy_j) in last.items():
            run = runs[run_id]
            assert run.kind == "trial" and run.status is RunStatus.FINISHED
            assert run.params["x"] == x
            assert run.energy_j >= energy_j > 0  # its whole energy, after its last report too
            trial = TrialRecord.from_record(run.record)
            assert trial is not None and (trial.state, trial.n_reports) == ("complete", REPORTS)
    finally:
        store.close()


def test_a_ray_tune_loop_on_a_ledger_another_process_holds_locked(
    isolated_project: Path, state: Path, tmp_path: Path
) -> None:
    ledger = isolated_project / ".wattwise" / "ledger.db"
    with locked_ledger(ledger) as holder:
        grid, callback, took = _fit(ledger, tmp_path)
        assert runs_in(holder) == 1  # still held
    assert took < BOUND_S
    last = _check_fit(grid, callback)
    repair(isolated_project)
    _check_ledger(ledger, callback, last)


def test_a_ray_tune_loop_on_a_ledger_that_hangs(
    isolated_project: Path, state: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A dead mount for real: a named pipe at the ledger's path, whose open() never returns."""
    ledger = isolated_project / ".wattwise" / "ledger.db"
    os.mkfifo(ledger)
    try:
        with caplog.at_level(logging.WARNING, logger="wattwise"):
            grid, callback, took = _fit(ledger, tmp_path)
    finally:
        ledger.unlink()  # the mount comes back (as an empty folder)
    assert took < BOUND_S
    last = _check_fit(grid, callback)
    # The callback could not read the trials' runs: its figures are their last reports,
    # and a warning said so, once.
    assert {b.source for b in callback.trials.values()} == {"last report"}
    said = [r.getMessage() for r in caplog.records if "did not answer within" in r.getMessage()]
    assert len(said) == 1, caplog.text
    assert str(ledger) in said[0]
    repair(isolated_project)
    _check_ledger(ledger, callback, last)
    assert not list((state / "wattwise" / "spool").glob("*.jsonl"))  # all merged

"""``wattwise.tune()`` never blocks on a ledger that is locked or hangs, and loses nothing.

The two faults, for real, as in ``tests/safety/`` and ``tests/cache/test_cache_booking.py``:

* another process (this test) holds the SQLite ledger's write lock (``BEGIN EXCLUSIVE``)
  for the whole study, and longer than the bound the study is given;
* the ledger is a named pipe nobody writes: ``open()`` of it never returns (a dead mount).

Each time a study of 4 cheap inline trials runs in a subprocess: the objective runs every
trial, ``tune()`` returns within the bound with the best value from the driver's own state,
and, once the fault is gone, ``wattwise doctor --repair`` brings the study run (with its
study record) and every trial run (with its energy, reports and trial record) into the
ledger from the spool.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import wattwise
from ledger_faults import locked_ledger, repair, runs_in
from wattwise.exceptions import StoreError
from wattwise.store import BaseRunStore, RunStatus, SQLiteRunStore
from wattwise.testing import FakeMeter
from wattwise.tuning import StudyRecord
from wattwise.tuning._records import TrialRecord
from wattwise.tuning._writer import LedgerLateError, StudyLedger

# The trials measure a fake GPU (20 W): a GPU's energy is the whole device's, so even a trial
# that takes no CPU tick has energy > 0 (a CPU's is shared by CPU time, in 10 ms ticks).

#: How long the whole study process may take. Generous (a loaded 2-core machine, a cold
#: import of Optuna): each of the 5 runs waits at most 0.5 s to start and
#: ``WATTWISE_FINAL_WRITE_S`` (1 s here) plus 2 s of spooling to end. The lock and the
#: hang both last longer than this: a study that waited on the ledger would not return.
BOUND_S = 120.0
FINAL_WAIT_S = "1"
N_TRIALS = 4

STUDY = textwrap.dedent("""
    import json, sys, time
    import optuna
    import wattwise
    from wattwise.testing import FakeMeter

    returned = {}

    def objective(trial):
        print("trial", trial.number, flush=True)
        x = trial.suggest_float("x", -2.0, 2.0)
        for step in range(3):
            trial.report((x - 0.3) ** 2 + 1.0 / (step + 1), step)
        value = (x - 0.3) ** 2
        returned[trial.number] = value
        return value

    n_trials = int(sys.argv[2]) if len(sys.argv) > 2 else 4
    storage = sys.argv[3] if len(sys.argv) > 3 else None  # an Optuna study to resume
    began = time.monotonic()
    result = wattwise.tune(
        objective, n_trials=n_trials, seed=5, pruner=optuna.pruners.NopPruner(),
        store=sys.argv[1], progress=False, storage=storage, resume=storage is not None,
        run_options={"meters": [FakeMeter({"gpu:0": 20.0})], "interval_s": 0.05,
                     "flush_s": 0.1},
    )
    took = time.monotonic() - began
    print(json.dumps({
        "took_s": took, "returned": returned, "study_id": result.study_id,
        "best_value": result.best_value, "best_number": result.best.number,
        "stop_reason": result.stop_reason, "n_trials": result.summary["n_trials"],
        "summary_source": result.record.summary_source,
        "optuna": result.summary.get("optuna"),
        "trials": [[t.number, t.state, t.run_id, t.energy_j, t.value] for t in result.trials],
    }), flush=True)
""")


@pytest.fixture
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The user's state folder (where a run whose ledger hangs spools), private to the test."""
    folder = tmp_path / "state"
    monkeypatch.setenv("XDG_STATE_HOME", str(folder))
    monkeypatch.setenv("WATTWISE_FINAL_WRITE_S", FINAL_WAIT_S)
    return folder


def _study(project: Path, ledger: Path, *more: str) -> tuple[dict[str, Any], float, str]:
    """Run the study in a subprocess; its printed outcome, its wall time and its stderr.
    ``more``: the number of trials and the Optuna storage of a study to resume."""
    script = project / "study.py"
    script.write_text(STUDY)
    began = time.monotonic()
    try:
        done = subprocess.run([sys.executable, str(script), str(ledger), *more], cwd=project,
                              capture_output=True, text=True, timeout=BOUND_S,
                              check=False)  # fmt: skip
    except subprocess.TimeoutExpired as err:  # subprocess.run killed its own child
        pytest.fail(f"tune() did not return within {BOUND_S:g} s: it waited on the ledger "
                    f"(stderr: {err.stderr!r})")  # fmt: skip
    took = time.monotonic() - began
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    return json.loads(done.stdout.splitlines()[-1]), took, done.stderr


def _check_outcome(outcome: dict[str, Any], took: float) -> None:
    """Every trial ran, and the result is the driver's own."""
    assert took < BOUND_S and outcome["took_s"] < BOUND_S
    returned = {int(n): v for n, v in outcome["returned"].items()}
    assert sorted(returned) == list(range(N_TRIALS))  # the objective ran every trial
    assert [t[1] for t in outcome["trials"]] == ["complete"] * N_TRIALS
    assert outcome["stop_reason"] == "n_trials"
    best = min(returned, key=returned.__getitem__)
    assert (outcome["best_number"], outcome["best_value"]) == (best, returned[best])
    assert [t[4] for t in outcome["trials"]] == [returned[n] for n in range(N_TRIALS)]
    assert all(t[3] > 0 for t in outcome["trials"])  # each trial's energy, from its run
    assert outcome["n_trials"]["complete"] == N_TRIALS


def _check_ledger(ledger: Path, outcome: dict[str, Any]) -> None:
    """The study run and its trial runs are in the ledger, as the study returned them."""
    store = SQLiteRunStore(ledger)
    try:
        study = store.get_run(outcome["study_id"])
        assert study.kind == "study" and study.status is RunStatus.FINISHED
        record = StudyRecord.from_record(study.record)
        assert record is not None, study.record
        assert record.n_trials["complete"] == N_TRIALS
        assert record.best is not None and record.best["value"] == outcome["best_value"]
        run_ids = [t[2] for t in outcome["trials"]]
        assert record.trial_run_ids == run_ids
        trials = {r.id: r for r in store.list_runs(study_id=study.id)}
        assert set(trials) == set(run_ids)
        for number, _, run_id, energy_j, value in outcome["trials"]:
            run = trials[run_id]
            assert run.status is RunStatus.FINISHED
            assert run.energy_j == pytest.approx(energy_j)
            trial = TrialRecord.from_record(run.record)
            assert trial is not None and (trial.number, trial.state) == (number, "complete")
            assert trial.value == value and trial.n_reports == 3
            # None lost. (A write in flight when the run gave up waiting may land twice once
            # the spool is merged: duplicates are preferred to losses, safety.md section 1.)
            points = store.metrics(run_id)
            assert sorted({s for s, k, _, _ in points if k == "value"}) == [0, 1, 2]
            assert {v for _, k, v, _ in points if k == "objective"} == {value}
    finally:
        store.close()


def test_a_study_whose_ledger_another_process_holds_locked_returns_and_loses_nothing(
    isolated_project: Path, state: Path
) -> None:
    ledger = isolated_project / ".wattwise" / "ledger.db"
    with locked_ledger(ledger) as holder:
        outcome, took, _ = _study(isolated_project, ledger)
        # Still held: nothing of the study could be written while it ran.
        assert runs_in(holder) == 1
    _check_outcome(outcome, took)
    # The ledger held none of the trials' runs: the summary says its figures are the driver's.
    assert outcome["summary_source"].startswith("the driver's own")
    repair(isolated_project)
    _check_ledger(ledger, outcome)


def test_a_study_whose_ledger_hangs_on_open_returns_and_loses_nothing(
    isolated_project: Path, state: Path
) -> None:
    """A dead mount for real: a named pipe at the ledger's path, whose open() never returns."""
    ledger = isolated_project / ".wattwise" / "ledger.db"
    os.mkfifo(ledger)
    try:
        outcome, took, _ = _study(isolated_project, ledger)
    finally:
        ledger.unlink()  # the mount comes back (as an empty folder)
    _check_outcome(outcome, took)
    # The ledger never answered: the summary says it is the driver's own, and why.
    assert outcome["summary_source"].startswith("the driver's own: The ledger at ")
    assert "did not answer within 5 s" in outcome["summary_source"]
    assert not (ledger.parent / "spool").exists()  # local disk, not the ledger's folder
    repair(isolated_project)
    _check_ledger(ledger, outcome)
    assert not list((state / "wattwise" / "spool").glob("*.jsonl"))  # all merged


OBJECTIVE = textwrap.dedent("""
    def objective(trial):
        x = trial.suggest_float("x", -2.0, 2.0)
        for step in range(3):
            trial.report((x - 0.3) ** 2 + 1.0 / (step + 1), step)
        return (x - 0.3) ** 2
""")


def test_wattwise_tune_on_a_ledger_that_hangs_prints_its_summary_and_loses_nothing(
    isolated_project: Path, state: Path
) -> None:
    """The command opens nothing itself: a named pipe as ``--store`` holds up neither the
    study nor the command's exit, and its summary says whose figures it shows."""
    (isolated_project / "search.py").write_text(OBJECTIVE)
    ledger = isolated_project / ".wattwise" / "ledger.db"
    os.mkfifo(ledger)
    env = {**os.environ, "WATTWISE_INTERVAL_S": "0.1"}
    try:
        done = subprocess.run(
            [sys.executable, "-m", "wattwise", "tune", "search.py", "--n-trials", "4",
             "--seed", "5", "--pruner", "none", "--store", str(ledger), "--json"],
            cwd=isolated_project, capture_output=True, text=True, env=env, timeout=BOUND_S,
            check=False,
        )  # fmt: skip
    finally:
        ledger.unlink()
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["n_trials"]["complete"] == N_TRIALS and data["stop_reason"] == "n_trials"
    assert data["summary_source"].startswith("the driver's own: The ledger at ")
    values = {t["number"]: t["value"] for t in data["trials"]}
    assert data["best"]["value"] == min(values.values())
    repair(isolated_project)
    store = SQLiteRunStore(ledger)
    try:
        runs = store.list_runs()
        assert sorted(r.kind for r in runs) == ["study"] + ["trial"] * N_TRIALS
        study = next(r for r in runs if r.kind == "study")
        assert study.id == data["study_id"] and study.status is RunStatus.FINISHED
        record = StudyRecord.from_record(study.record)
        assert record is not None and record.trial_run_ids == data["trial_run_ids"]
    finally:
        store.close()


def test_a_study_resumed_while_its_ledger_hangs_counts_earlier_trials_from_optuna(
    isolated_project: Path, state: Path
) -> None:
    """Resuming reads the earlier sessions' runs from the ledger; when it hangs, the study
    goes on with what the Optuna study holds (each trial's energy) instead of waiting."""
    ledger = isolated_project / ".wattwise" / "ledger.db"
    storage = f"sqlite:///{isolated_project / 'study.db'}"
    first, _, _ = _study(isolated_project, ledger, "2", storage)  # a healthy first session
    assert first["summary_source"] is None  # the ledger answered: its figures
    aside = isolated_project / "ledger.db.aside"
    for suffix in ("-wal", "-shm"):
        assert not ledger.with_name(ledger.name + suffix).exists()
    ledger.rename(aside)
    os.mkfifo(ledger)
    try:
        second, took, _ = _study(isolated_project, ledger, str(N_TRIALS), storage)
    finally:
        ledger.unlink()
        aside.rename(ledger)
    assert took < BOUND_S
    assert sorted(int(n) for n in second["returned"]) == [2, 3]  # 4 in the study in all
    kept = second["optuna"]
    assert (kept["session"], kept["trials_before"]) == (2, 2)
    assert kept["previous_study_run_ids"] == [first["study_id"]]
    # Without the ledger: the energy Optuna holds for each earlier trial.
    assert kept["energy_j_before"] == pytest.approx(sum(t[3] for t in first["trials"]))
    assert second["summary_source"].startswith("the driver's own: ")
    repair(isolated_project)
    store = SQLiteRunStore(ledger)
    try:
        study = store.get_run(second["study_id"])
        record = StudyRecord.from_record(study.record)
        assert record is not None and record.other["optuna"]["session"] == 2
        trials = store.list_runs(study_id=study.id)
        assert sorted(r.id for r in trials) == sorted(t[2] for t in second["trials"])
    finally:
        store.close()


def test_strict_mode_raises_at_the_study_start_instead(
    isolated_project: Path, state: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``tune()`` has no ``strict`` parameter; ``WATTWISE_STRICT=1`` makes its runs strict:
    the study run's first write not done in time raises, before any trial."""
    monkeypatch.setenv("WATTWISE_STRICT", "1")
    ledger = isolated_project / ".wattwise" / "ledger.db"
    os.mkfifo(ledger)
    script = isolated_project / "study.py"
    script.write_text(STUDY)
    try:
        done = subprocess.run([sys.executable, str(script), str(ledger)], cwd=isolated_project,
                              capture_output=True, text=True, timeout=BOUND_S,
                              check=False)  # fmt: skip
    finally:
        ledger.unlink()
    assert done.returncode == 1 and done.stdout == ""  # no trial started (each prints)
    assert "wattwise.exceptions.StoreError: The first write of run" in done.stderr
    assert "did not finish within 0.5 s" in done.stderr


DIES = textwrap.dedent("""
    import os

    def objective(trial):
        x = trial.suggest_float("x", -2.0, 2.0)
        for step in range(3):
            trial.report((x - 0.3) ** 2 + 1.0 / (step + 1), step)
            if trial.number == 1 and step == 1:
                os._exit(3)  # its worker process dies mid-trial
        return (x - 0.3) ** 2
""")

POOL = textwrap.dedent("""
    import json, sys, time
    import optuna
    import wattwise
    from wattwise.testing import FakeMeter

    if __name__ == "__main__":
        began = time.monotonic()
        result = wattwise.tune(
            "dies.py:objective", n_trials=4, seed=5, pruner=optuna.pruners.NopPruner(),
            store=sys.argv[1], progress=False, executor="processes", n_workers=2,
            run_options={"meters": [FakeMeter({"gpu:0": 20.0})], "interval_s": 0.05,
                         "flush_s": 0.1},
        )
        print(json.dumps({
            "took_s": time.monotonic() - began, "study_id": result.study_id,
            "best_value": result.best_value, "stop_reason": result.stop_reason,
            "summary_source": result.record.summary_source,
            "trials": [[t.number, t.state, t.run_id, t.energy_j, t.value, t.error]
                       for t in result.trials],
        }), flush=True)
""")


def test_worker_processes_and_a_dead_worker_on_a_locked_ledger(
    isolated_project: Path, state: Path
) -> None:
    """Trials in worker processes write from there; the driver's own call for the worker
    that died (its run's figures and crash note) fails on the lock, and the trial counts
    with the energy of its last report instead of holding the study up."""
    (isolated_project / "dies.py").write_text(DIES)
    script = isolated_project / "pool.py"
    script.write_text(POOL)
    ledger = isolated_project / ".wattwise" / "ledger.db"
    with locked_ledger(ledger):
        try:
            done = subprocess.run([sys.executable, str(script), str(ledger)],
                                  cwd=isolated_project, capture_output=True, text=True,
                                  timeout=BOUND_S, check=False)  # fmt: skip
        except subprocess.TimeoutExpired:
            pytest.fail(f"tune() did not return within {BOUND_S:g} s on a locked ledger")
    assert done.returncode == 0, done.stderr
    outcome = json.loads(done.stdout.splitlines()[-1])
    assert outcome["took_s"] < BOUND_S and outcome["stop_reason"] == "n_trials"
    states = {t[0]: t[1] for t in outcome["trials"]}
    assert states == {0: "complete", 1: "fail", 2: "complete", 3: "complete"}
    dead = outcome["trials"][1]
    assert "worker process died (exit code 3)" in dead[5]
    assert dead[3] > 0  # the energy of its last report, from the driver's own state
    assert "The study counts that trial with the energy of its last report" in done.stderr
    assert outcome["summary_source"].startswith("the driver's own")
    values = [t[4] for t in outcome["trials"] if t[1] == "complete"]
    assert outcome["best_value"] == min(values)
    repair(isolated_project)
    store = SQLiteRunStore(ledger)
    try:
        study = store.get_run(outcome["study_id"])
        assert study.status is RunStatus.FINISHED
        record = StudyRecord.from_record(study.record)
        assert record is not None and record.n_trials["fail"] == 1
        assert record.trial_run_ids == [t[2] for t in outcome["trials"]]  # the dead one's too
        runs = {r.id: r for r in store.list_runs(study_id=study.id)}
        # (The dead worker's own run is here only if its worker spooled it before dying:
        # its first write was still waiting on the lock when it died.)
        for _, state_, run_id, energy_j, value, _ in outcome["trials"]:
            if state_ == "complete":
                assert runs[run_id].status is RunStatus.FINISHED
                assert runs[run_id].energy_j == pytest.approx(energy_j)
                points = store.metrics(run_id)  # (duplicates preferred to losses, as above)
                assert {v for _, k, v, _ in points if k == "objective"} == {value}
    finally:
        store.close()


# -- the driver's ledger thread, on its own ---------------------------------------------------


def _wait_for(predicate: Any, what: str) -> None:
    deadline = time.monotonic() + 120  # however late a loaded machine gets there
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def test_a_late_call_is_waited_for_once_then_not_at_all_until_it_returns(
    isolated_project: Path,
) -> None:
    store = SQLiteRunStore(isolated_project / ".wattwise" / "ledger.db")
    ledger = StudyLedger(store, owned=True, wait_s=120.0)
    answer = threading.Event()  # the ledger hangs until the test lets it answer
    made: list[str] = []
    try:
        assert ledger.call(lambda s: s.list_runs(), what="list the runs") == []
        ledger.wait_s = 0.2
        with pytest.raises(LedgerLateError, match=r"did not answer within 0\.2 s when asked"):
            ledger.call(lambda s: answer.wait(120), what="hang")
        ledger.wait_s = 120.0  # from here on, a call that waited would wait this long
        # While it is late, a read is neither waited for nor made...
        with pytest.raises(LedgerLateError, match="has not answered since it was asked to hang"):
            ledger.call(lambda s: made.append("read"), what="read")
        # ... and a write is kept, queued behind the late call, without a wait either.
        with pytest.raises(LedgerLateError, match="so the study did not wait for it to write"):
            ledger.call(lambda s: made.append("write"), what="write", keep=True)
        assert made == []
        answer.set()  # the ledger answers again: the kept write is made, the read never
        _wait_for(lambda: made == ["write"], "the kept write")
        assert ledger.call(lambda s: 42, what="answer") == 42  # waited for again
    finally:
        answer.set()
        ledger.close()
    assert made == ["write"]


def test_a_store_fault_is_a_store_error_and_a_bug_raises_as_it_is(isolated_project: Path) -> None:
    ledger = StudyLedger(SQLiteRunStore(isolated_project / ".wattwise" / "ledger.db"),
                         owned=True)  # fmt: skip

    def disk_fails(store: BaseRunStore) -> None:
        msg = "disk I/O error"
        raise sqlite3.OperationalError(msg)

    def bug(store: BaseRunStore) -> None:
        msg = "x"
        raise KeyError(msg)

    try:
        with pytest.raises(StoreError, match="failed to read the runs: disk I/O error"):
            ledger.call(disk_fails, what="read the runs")
        with pytest.raises(KeyError):
            ledger.call(bug, what="read the runs")
    finally:
        ledger.close()


def test_closing_does_not_wait_for_a_late_call(isolated_project: Path) -> None:
    ledger = StudyLedger(SQLiteRunStore(isolated_project / ".wattwise" / "ledger.db"),
                         owned=True, wait_s=0.2)  # fmt: skip
    answer = threading.Event()
    try:
        with pytest.raises(LedgerLateError):
            ledger.call(lambda s: answer.wait(120), what="hang")
        ledger.wait_s = 120.0
        began = time.monotonic()
        ledger.close()  # the study ends: its ledger is not waited for
        assert time.monotonic() - began < 120.0 and not answer.is_set()
    finally:
        answer.set()


def test_the_human_summary_says_whose_figures_it_shows(isolated_project: Path) -> None:
    from wattwise.cli.commands.tune import summary

    result = wattwise.tune(
        lambda trial: trial.suggest_float("x", 0.0, 1.0), n_trials=2, seed=1,
        run_options={"meters": [FakeMeter({"gpu:0": 20.0})], "emit_warnings": False},
    )  # fmt: skip
    assert result.record.summary_source is None  # a healthy ledger: its figures
    healthy = summary(result)
    assert "Figures:" not in healthy and "(from the ledger):" in healthy
    source = "the driver's own: The ledger at /x did not answer within 5 s"
    shown = summary(dataclasses.replace(result, summary={**result.summary,
                                                         "summary_source": source}))  # fmt: skip
    assert f"  Figures: {source}; the runs reach the ledger from the spool" in shown
    assert "(the driver's figures):" in shown and "(from the ledger)" not in shown

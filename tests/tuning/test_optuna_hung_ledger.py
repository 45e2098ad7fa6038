"""A user's own Optuna loop (``wattwise.optuna``) never blocks on a ledger that is locked or
hangs, and loses nothing.

``wattwise.optuna`` reads nothing from the ledger: its study run and trial runs only write, as
any run does (``tracking/_handoff.py``). These tests hold it to that, with the two faults for
real (as in ``test_tune_hung_ledger.py``): a ``BEGIN EXCLUSIVE`` lock held by this test, and a
named pipe at the ledger's path (``open()`` never returns: a dead mount). A real
``optuna.create_study()`` loop of 4 trials runs in a subprocess with ``track_objective`` and
``WattwiseCallback``; every trial runs and keeps its energy in Optuna, and once the fault is
gone ``wattwise doctor --repair`` brings the study run and the trial runs into the ledger.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from ledger_faults import locked_ledger, repair, runs_in
from wattwise.store import RunStatus, SQLiteRunStore
from wattwise.tuning import StudyRecord, TrialRecord

pytest.importorskip("optuna")

#: How long the loop's process may take (a loaded 2-core machine, a cold import of Optuna).
#: The lock and the hang outlast it: a loop that waited on the ledger would not end.
BOUND_S = 120.0
N_TRIALS = 4

LOOP = textwrap.dedent("""
    import json, sys, time
    import optuna
    import wattwise.optuna
    from wattwise.testing import FakeMeter
    from wattwise.tuning import STUDY_RUNS_ATTR

    optuna.logging.set_verbosity(optuna.logging.WARNING)

    @wattwise.optuna.track_objective(store=sys.argv[1], meters=[FakeMeter({"gpu:0": 20.0})],
                                     interval_s=0.05, flush_s=0.1)
    def objective(trial):
        x = trial.suggest_float("x", -2.0, 2.0)
        for step in range(3):
            trial.report((x - 0.3) ** 2 + 1.0 / (step + 1), step)
        return (x - 0.3) ** 2

    began = time.monotonic()
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=5))
    with wattwise.optuna.WattwiseCallback(budget_kwh=1.0) as callback:
        study.optimize(objective, n_trials=int(sys.argv[2]), callbacks=[callback])
    print(json.dumps({
        "took_s": time.monotonic() - began,
        "study_id": study.user_attrs[STUDY_RUNS_ATTR][-1],
        "trials": [[t.number, t.state.name, t.value, t.user_attrs.get("wattwise_run_id"),
                    t.user_attrs.get("wattwise_energy_j")] for t in study.trials],
    }), flush=True)
""")


@pytest.fixture
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The user's state folder (where a run whose ledger hangs spools), private to the test."""
    folder = tmp_path / "state"
    monkeypatch.setenv("XDG_STATE_HOME", str(folder))
    monkeypatch.setenv("WATTWISE_FINAL_WRITE_S", "1")
    return folder


def _loop(project: Path, ledger: Path) -> dict[str, Any]:
    script = project / "loop.py"
    script.write_text(LOOP)
    began = time.monotonic()
    try:
        done = subprocess.run([sys.executable, str(script), str(ledger), str(N_TRIALS)],
                              cwd=project, capture_output=True, text=True, timeout=BOUND_S,
                              check=False)  # fmt: skip
    except subprocess.TimeoutExpired as err:  # subprocess.run killed its own child
        pytest.fail(f"the Optuna loop did not end within {BOUND_S:g} s: it waited on the "
                    f"ledger (stderr: {err.stderr!r})")  # fmt: skip
    assert time.monotonic() - began < BOUND_S
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    outcome: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    trials = outcome["trials"]
    assert [t[1] for t in trials] == ["COMPLETE"] * N_TRIALS  # every trial ran, as it would
    assert all(isinstance(t[3], str) and t[4] > 0 for t in trials)  # its run and its energy
    assert outcome["study_id"] is not None
    return outcome


def _repair_and_check(project: Path, ledger: Path, outcome: dict[str, Any]) -> None:
    repair(project)
    store = SQLiteRunStore(ledger)
    try:
        study = store.get_run(outcome["study_id"])
        assert study.kind == "study" and study.status is RunStatus.FINISHED
        record = StudyRecord.from_record(study.record)
        assert record is not None and record.n_trials["complete"] == N_TRIALS
        runs = {r.id: r for r in store.list_runs(study_id=study.id)}
        assert set(runs) == {t[3] for t in outcome["trials"]}
        for number, _, value, run_id, energy_j in outcome["trials"]:
            run = runs[run_id]
            assert run.status is RunStatus.FINISHED
            assert run.energy_j == pytest.approx(energy_j, rel=0.01)
            trial = TrialRecord.from_record(run.record)
            assert trial is not None and (trial.number, trial.state) == (number, "complete")
            assert trial.value == value
    finally:
        store.close()


def test_an_optuna_loop_on_a_ledger_another_process_holds_locked(
    isolated_project: Path, state: Path
) -> None:
    ledger = isolated_project / ".wattwise" / "ledger.db"
    with locked_ledger(ledger) as holder:
        outcome = _loop(isolated_project, ledger)
        assert runs_in(holder) == 1  # still held
    _repair_and_check(isolated_project, ledger, outcome)


def test_an_optuna_loop_on_a_ledger_that_hangs(isolated_project: Path, state: Path) -> None:
    ledger = isolated_project / ".wattwise" / "ledger.db"
    os.mkfifo(ledger)
    try:
        outcome = _loop(isolated_project, ledger)
    finally:
        ledger.unlink()  # the mount comes back (as an empty folder)
    _repair_and_check(isolated_project, ledger, outcome)
    assert not list((state / "wattwise" / "spool").glob("*.jsonl"))  # all merged

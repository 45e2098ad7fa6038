"""Pruning through Optuna's ask/tell with scripted reports; pruned and failed trials, ledgered."""

from __future__ import annotations

import math
import time
from typing import Any

import optuna
import pytest

import wattwise
from wattwise.store import RunStatus, open_store
from wattwise.testing import FakeMeter

POWER_W = 100.0

# Reported values per trial number; ThresholdPruner(upper=0.5) prunes a value above 0.5.
SCRIPT = {
    0: [0.4, 0.3, 0.2, 0.1],
    1: [0.4, 0.9, 0.1, 0.1],  # pruned at step 1
    2: [0.45, 0.4, 0.3, 0.25],
    3: [0.7, 0.1, 0.1, 0.1],  # pruned at step 0
}


def fake_options(**extra: Any) -> dict[str, Any]:
    return {"meters": [FakeMeter({"gpu:0": POWER_W})], "interval_s": 0.05,
            "emit_warnings": False, **extra}  # fmt: skip


def scripted(trial: Any) -> float:
    trial.suggest_float("x", 0.0, 1.0)
    trial.set_max_step(len(SCRIPT[trial.number]) - 1)
    for step, value in enumerate(SCRIPT[trial.number]):
        time.sleep(0.02)
        trial.report(value, step)
        if trial.should_prune():
            raise optuna.TrialPruned()
    return SCRIPT[trial.number][-1]


def test_scripted_reports_prune_exactly_where_the_pruner_says() -> None:
    result = wattwise.tune(
        scripted, pruner=optuna.pruners.ThresholdPruner(upper=0.5), n_trials=4,
        run_options=fake_options(),
    )  # fmt: skip
    assert [(t.state, t.last_step, t.value) for t in result.trials] == [
        ("complete", 3, 0.1), ("pruned", 1, 0.9), ("complete", 3, 0.25), ("pruned", 0, 0.7),
    ]  # fmt: skip
    study_states = [t.state.name for t in result.study.trials]
    assert study_states == ["COMPLETE", "PRUNED", "COMPLETE", "PRUNED"]
    assert result.study.trials[1].intermediate_values == {0: 0.4, 1: 0.9}
    store = open_store()
    pruned = store.get_run(result.trials[1].run_id)
    assert pruned.kind == "trial" and pruned.status is RunStatus.FINISHED
    info = pruned.record["extra"]["trial"]
    assert info["state"] == "pruned" and info["stopped_by"] == "pruner"
    assert info["last_step"] == 1 and info["n_reports"] == 2 and info["number"] == 1
    values = [(s, v) for s, k, v, _ in store.metrics(pruned.id) if k == "value"]
    assert values == [(0, 0.4), (1, 0.9)]
    energies = [v for _, k, v, _ in store.metrics(pruned.id) if k == "energy_j"]
    assert len(energies) == 2 and energies[0] < energies[1] <= pruned.energy_j
    assert pruned.energy_j > 0 and pruned.params.keys() == {"x"}
    complete = store.get_run(result.trials[0].run_id)
    assert [v for _, k, v, _ in store.metrics(complete.id) if k == "objective"] == [0.1]
    assert result.summary["n_trials"]["pruned"] == 2 and result.avoided_energy_j > 0


def failing(trial: Any) -> float:
    x = trial.suggest_float("x", 0.0, 1.0)
    time.sleep(0.05)
    if trial.number == 1:
        msg = "diverged"
        raise ValueError(msg)
    if trial.number == 2:
        return math.nan
    return x


def test_failed_trials_are_in_the_ledger_with_their_energy_and_the_study_goes_on() -> None:
    result = wattwise.tune(failing, n_trials=4, catch=(ValueError,), run_options=fake_options())
    assert [t.state for t in result.trials] == ["complete", "fail", "fail", "complete"]
    assert result.stop_reason == "n_trials"
    store = open_store()
    failed = store.get_run(result.trials[1].run_id)
    assert failed.status is RunStatus.FAILED and failed.energy_j > 0
    assert failed.record["extra"]["trial"]["state"] == "fail"
    assert "ValueError: diverged" in failed.record["extra"]["trial"]["error"]
    nan = store.get_run(result.trials[2].run_id)
    assert nan.status is RunStatus.FAILED and "finite number" in result.trials[2].error
    assert result.study.trials[1].state.name == "FAIL"


def test_an_uncaught_error_ends_the_study_after_recording_it() -> None:
    with pytest.raises(ValueError, match="diverged"):
        wattwise.tune(failing, n_trials=4, run_options=fake_options())
    runs = open_store().list_runs()
    driver = next(r for r in runs if r.kind == "study")
    assert driver.status is RunStatus.FAILED
    assert driver.record["extra"]["study"]["stop_reason"] == "error"
    assert [r.status for r in runs if r.kind == "trial"] == [RunStatus.FINISHED, RunStatus.FAILED]


def steady(trial: Any) -> float:
    trial.suggest_float("x", 0.0, 1.0)
    for step in range(6):
        time.sleep(0.03)  # 3 J a step at 100 W
        trial.report(1.0 / (step + 1), step)
    return 0.1


def test_energy_fidelity_gives_the_pruner_joules_as_steps() -> None:
    result = wattwise.tune(
        steady, n_trials=2, energy_fidelity=True, energy_step_j=1.0,
        pruner=optuna.pruners.NopPruner(), run_options=fake_options(),
    )  # fmt: skip
    store = open_store()
    for summary, trial in zip(result.trials, result.study.trials, strict=True):
        energies = [v for _, k, v, _ in store.metrics(summary.run_id) if k == "energy_j"]
        assert sorted(trial.intermediate_values) == [int(e) for e in energies]
        assert list(trial.intermediate_values.values()) == [1.0 / (s + 1) for s in range(6)]
    assert result.summary["energy_fidelity"] == {
        "enabled": True, "step_j": 1.0, "step_j_source": "given",
    }  # fmt: skip


def test_energy_fidelity_calibrates_its_step_on_the_first_complete_trial() -> None:
    result = wattwise.tune(steady, n_trials=2, energy_fidelity=True, run_options=fake_options())
    unit = result.summary["energy_fidelity"]["step_j"]
    # 1/32 of the first complete trial's energy (tests/tuning/test_fidelity_unit.py)
    assert unit == pytest.approx(result.trials[0].energy_j / 32)
    energies = [v for _, k, v, _ in open_store().metrics(result.trials[0].run_id)
                if k == "energy_j"]  # fmt: skip
    seen = result.study.trials[0].intermediate_values
    # every report reached the pruner once the trial completed, but a report in the same
    # step as the one before is not shown to it
    expected = sorted({int(e / unit) for e in energies})
    assert sorted(seen) == expected and len(seen) >= 1

"""The inline executor: reproducible with a seed; the ledger layout; the driver's own cost."""

from __future__ import annotations

import time
from typing import Any

import optuna

import wattwise
from wattwise.store import open_store, project_footprint
from wattwise.testing import FakeMeter
from wattwise.tuning import Budget, Spent
from wattwise.tuning._progress import status_line


def curve(trial: Any) -> float:
    x = trial.suggest_float("x", -2.0, 2.0)
    width = trial.suggest_int("width", 8, 64, log=True)
    kind = trial.suggest_categorical("kind", ["a", "b"])
    loss = 0.0
    for step in range(9):
        loss = (x - 0.3) ** 2 + 1.0 / (step + 1) + (0.1 if kind == "b" else 0.0) + width / 1e3
        trial.report(loss, step)
        if trial.should_prune():
            raise optuna.TrialPruned()
    return loss


def fake() -> dict[str, Any]:
    return {"meters": [FakeMeter({"gpu:0": 10.0})], "interval_s": 0.2, "emit_warnings": False}


def history(seed: int) -> list[tuple[Any, ...]]:
    # reproducible with report steps as the fidelity (measured energy is not reproducible)
    result = wattwise.tune(curve, n_trials=14, seed=seed, energy_fidelity=False,
                           run_options=fake())  # fmt: skip
    return [(t.number, t.state, t.last_step, tuple(sorted(t.params.items())))
            for t in result.trials]  # fmt: skip


def test_a_seeded_inline_study_runs_the_same_trials_twice() -> None:
    first, second = history(3), history(3)
    assert first == second
    assert {state for _, state, _, _ in first} == {"complete", "pruned"}
    assert history(4) != first


def test_trials_and_driver_are_runs_linked_by_study_id() -> None:
    result = wattwise.tune(curve, n_trials=5, seed=0, run_options=fake(), tags=["t"])
    runs = open_store().list_runs()
    driver = next(r for r in runs if r.kind == "study")
    trials = [r for r in runs if r.kind == "trial"]
    assert driver.id == result.study_id and driver.name == "tune-curve"
    assert len(trials) == 5 and all(r.study_id == driver.id for r in trials)
    assert all(r.parent_id is None for r in [driver, *trials])  # counted once each
    assert all(r.tags == ["t"] for r in runs)
    assert trials[0].params.keys() == {"x", "width", "kind"}
    study = driver.record["extra"]["study"]
    keys = ("n_trials", "budget", "spent", "stop_reason", "overshoot", "best", "best_run_id",
            "pareto_run_ids", "avoided_energy_j", "avoided_co2e_g")  # fmt: skip
    for key in keys:
        assert key in study, key
    assert study["best_run_id"] == result.best.run_id
    assert set(study["pareto_run_ids"]) <= {r.id for r in trials}
    assert study["trial_run_ids"] == [r.id for r in trials]
    assert driver.params["n_trials"] == 5 and driver.params["executor"] == "inline"


def busy(trial: Any) -> float:
    x = trial.suggest_float("x", 0.0, 1.0)
    end = time.process_time() + 1.0  # large against the driver's own start-up and writes
    while time.process_time() < end:  # burn CPU inside the trial
        x = (x * 1.0001) % 1.0
    trial.report(x, 0)
    return x


def test_the_driver_does_not_count_the_cpu_work_of_inline_trials() -> None:
    result = wattwise.tune(busy, n_trials=2, run_options={"interval_s": 0.1,
                                                          "emit_warnings": False})  # fmt: skip
    spent = result.summary["spent"]
    assert spent["trials_energy_j"] > 0
    # Counted in the driver, the trials' CPU seconds would make it at least as large as theirs;
    # what remains is the driver's own work (Optuna, the runs' starts and writes), which a loaded
    # machine stretches: 0.23 J against 0.72 J once, when each trial burnt 0.4 s.
    assert spent["driver_energy_j"] < 0.5 * spent["trials_energy_j"]
    footprint = project_footprint(open_store().list_runs())
    assert footprint.total.runs == 3
    assert abs(footprint.total.energy_j - result.spent.energy_j) < 0.05 * result.spent.energy_j


def test_wattwise_tune_is_the_plain_function_of_the_tuning_package() -> None:
    import inspect

    import wattwise.tuning

    assert inspect.isfunction(wattwise.tune) and wattwise.tune is wattwise.tuning.tune
    result = wattwise.tune(lambda t: t.suggest_float("x", 0, 1), n_trials=1, run_options=fake())
    assert isinstance(result, wattwise.tuning.TuneResult)


def test_status_line() -> None:
    line = status_line(
        counts={"complete": 3, "pruned": 4, "fail": 1}, running=2, best=(5, 0.9712),
        spent=Spent(energy_j=1200.0, co2e_g=0.5, duration_s=42.0),
        budget=Budget(energy_j=3600.0, co2e_g=2.0, timeout_s=600.0, n_trials=40),
    )  # fmt: skip
    assert line == (
        "trials 10/40 (3 complete, 4 pruned, 1 failed, 2 running) · best 0.9712 (#5) · "
        "energy 1.20 kJ / 3.60 kJ · carbon 500 mgCO2e / 2.00 gCO2e · 42 s / 600 s"
    )


def test_progress_line_is_shown_only_when_asked(capsys: Any) -> None:
    wattwise.tune(lambda t: t.suggest_float("x", 0, 1), n_trials=2, run_options=fake())
    assert capsys.readouterr().err == ""  # not a terminal: quiet
    wattwise.tune(lambda t: t.suggest_float("x", 0, 1), n_trials=2, progress=True,
                  run_options=fake())  # fmt: skip
    err = capsys.readouterr().err
    assert "wattwise tune tune-<lambda>: trials 2/2 (2 complete" in err

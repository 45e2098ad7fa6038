"""The energy-fidelity unit: 1/32 of the first complete trial's energy, whatever the reporting
frequency (issue 12).

Real studies (``wattwise.tune``, real Optuna, a real ledger) with a fake meter on a scripted
clock: every batch of work costs exactly ``BATCH_J`` joules, whatever the machine's load.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
import pytest

import wattwise
from study_support import ScriptedClock, scripted_run_options
from wattwise.store import open_store
from wattwise.testing import FakeMeter
from wattwise.tuning import ENERGY_ATTR
from wattwise.tuning._tuner import (
    DEFAULT_MIN_RESOURCE,
    ENERGY_STEP_ATTR,
    ENERGY_STEPS_PER_TRAINING,
)

POWER_W = 80.0
BATCH_S = 0.0625  # 5 J per batch, exact in binary floating point
BATCH_J = POWER_W * BATCH_S
EPOCHS, BATCHES = 10, 10  # one training: 100 batches, 500 J
TRAINING_J = EPOCHS * BATCHES * BATCH_J
#: Where the default pruner's first rung is, as a fraction of a training (0.1875).
FIRST_RUNG = DEFAULT_MIN_RESOURCE / ENERGY_STEPS_PER_TRAINING


def options(clock: ScriptedClock) -> dict[str, Any]:
    return scripted_run_options(clock, POWER_W)


def report(trial: Any, value: float, step: int) -> None:
    trial.report(value, step)
    if trial.should_prune():
        raise optuna.TrialPruned()


def training(clock: ScriptedClock, *, every: str, value: Callable[[int], float],
             batch_s: float = BATCH_S) -> Callable[[Any], float]:  # fmt: skip
    """An objective: ``EPOCHS`` epochs of ``BATCHES`` batches, reporting ``value(number)``
    after every epoch or after every batch."""

    def objective(trial: Any) -> float:
        trial.suggest_float("x", 0.0, 1.0)
        score = value(trial.number)
        for epoch in range(EPOCHS):
            for batch in range(BATCHES):
                clock.t += batch_s
                if every == "batch":
                    report(trial, score, epoch * BATCHES + batch)
            if every == "epoch":
                report(trial, score, epoch)
        return score

    return objective


def first_is_best(number: int) -> float:
    return 0.9 if number == 0 else 0.1


def energies(run_id: str | None) -> list[float]:
    assert run_id is not None
    return [v for _, k, v, _ in open_store().metrics(run_id) if k == "energy_j"]


@pytest.mark.parametrize("every", ["epoch", "batch"])
def test_the_first_rung_is_at_the_same_fraction_of_a_training_however_often_trials_report(
    every: str,
) -> None:
    clock = ScriptedClock()
    result = wattwise.tune(
        training(clock, every=every, value=first_is_best), n_trials=2, seed=0,
        direction="maximize", run_options=options(clock),
    )  # fmt: skip
    first, worse = result.trials
    assert (first.state, worse.state) == ("complete", "pruned")
    assert first.energy_j == TRAINING_J
    unit = TRAINING_J / ENERGY_STEPS_PER_TRAINING
    fidelity = result.record.energy_fidelity
    assert fidelity["step_j"] == unit
    assert fidelity["calibrated_on_trial"] == 0
    assert fidelity["calibrated_on_energy_j"] == TRAINING_J
    assert fidelity["step_j_source"] == (
        f"auto: 1/{ENERGY_STEPS_PER_TRAINING} of the energy of the first complete trial "
        f"(trial 0, {TRAINING_J:.4g} J)"
    )
    # the worse trial is judged, and stopped, at its first report past 6/32 of a training
    reports = EPOCHS if every == "epoch" else EPOCHS * BATCHES
    stopped_at = worse.energy_j / first.energy_j
    assert FIRST_RUNG <= stopped_at < FIRST_RUNG + 1 / reports
    # the first trial's reports, made before the unit was known, were given to the pruner
    # at their energy steps once it completed (it is the competitor at every rung)
    seen = result.study.trials[0].intermediate_values
    assert sorted(seen) == sorted({int(e / unit) for e in energies(first.run_id)})
    assert set(seen.values()) == {0.9}


def test_epoch_and_batch_reporting_are_judged_within_one_report_of_each_other() -> None:
    fractions = {}
    for every in ("epoch", "batch"):
        clock = ScriptedClock()
        result = wattwise.tune(
            training(clock, every=every, value=first_is_best), n_trials=2, seed=0,
            direction="maximize", run_options=options(clock), study_name=f"s-{every}",
        )  # fmt: skip
        fractions[every] = result.trials[1].energy_j / result.trials[0].energy_j
    assert abs(fractions["epoch"] - fractions["batch"]) <= 1 / EPOCHS  # one epoch report


def test_a_pruned_or_failed_first_trial_does_not_calibrate() -> None:
    clock = ScriptedClock()
    full = training(clock, every="batch", value=lambda n: 0.9 if n == 2 else 0.1)

    def objective(trial: Any) -> float:
        if trial.number in (0, 1):
            trial.suggest_float("x", 0.0, 1.0)
            for batch in range(3 + 2 * trial.number):
                clock.t += BATCH_S
                trial.report(0.5, batch)
            if trial.number == 0:
                raise optuna.TrialPruned()  # the objective's own decision
            msg = "diverged"
            raise ValueError(msg)
        return full(trial)

    result = wattwise.tune(objective, n_trials=4, seed=0, direction="maximize",
                           catch=(ValueError,), run_options=options(clock))  # fmt: skip
    assert [t.state for t in result.trials] == ["pruned", "fail", "complete", "pruned"]
    fidelity = result.record.energy_fidelity
    assert fidelity["calibrated_on_trial"] == 2
    assert fidelity["step_j"] == result.trials[2].energy_j / ENERGY_STEPS_PER_TRAINING
    # the trials that ended before the unit was known were never shown to the pruner
    assert [t.intermediate_values for t in result.study.trials[:2]] == [{}, {}]
    assert energies(result.trials[0].run_id) == [BATCH_J, 2 * BATCH_J, 3 * BATCH_J]
    stopped_at = result.trials[3].energy_j / result.trials[2].energy_j
    assert FIRST_RUNG <= stopped_at < FIRST_RUNG + 1 / (EPOCHS * BATCHES)


def test_no_complete_trial_leaves_the_unit_unknown_and_says_so() -> None:
    clock = ScriptedClock()

    def objective(trial: Any) -> float:
        trial.suggest_float("x", 0.0, 1.0)
        for batch in range(4):
            clock.t += BATCH_S
            trial.report(0.5, batch)
        raise optuna.TrialPruned()

    result = wattwise.tune(objective, n_trials=2, run_options=options(clock))
    fidelity = result.record.energy_fidelity
    assert fidelity["enabled"] is True and fidelity["step_j"] is None
    assert "no trial completed" in fidelity["step_j_source"]
    assert all(not t.intermediate_values for t in result.study.trials)
    assert ENERGY_STEP_ATTR not in result.study.user_attrs


def test_an_energy_step_given_is_kept_and_used_from_the_first_report() -> None:
    clock = ScriptedClock()
    result = wattwise.tune(
        training(clock, every="batch", value=first_is_best), n_trials=2, seed=0,
        direction="maximize", energy_step_j=10.0, run_options=options(clock),
    )  # fmt: skip
    assert result.record.energy_fidelity == {
        "enabled": True, "step_j": 10.0, "step_j_source": "given",
    }  # fmt: skip
    seen = result.study.trials[0].intermediate_values
    assert sorted(seen) == sorted({int(e / 10.0) for e in energies(result.trials[0].run_id)})
    # the first rung at 6 steps of 10 J: 60 J, reached at the 12th batch
    assert result.trials[1].state == "pruned" and result.trials[1].energy_j == 60.0
    assert result.study.user_attrs[ENERGY_STEP_ATTR] == {"step_j": 10.0, "source": "given"}


def test_a_resumed_study_keeps_its_unit(isolated_project: Path) -> None:
    storage = f"sqlite:///{isolated_project / 'study.db'}"
    clock = ScriptedClock()
    first = wattwise.tune(
        training(clock, every="batch", value=first_is_best), n_trials=1, seed=0,
        direction="maximize", storage=storage, study_name="s", resume=True,
        run_options=options(clock),
    )  # fmt: skip
    unit = TRAINING_J / ENERGY_STEPS_PER_TRAINING
    assert first.record.energy_fidelity["step_j"] == unit
    # the next session's trials cost twice as much per batch: recalibrating on its first
    # complete trial would double the unit; it keeps the study's
    clock = ScriptedClock()
    second = wattwise.tune(
        training(clock, every="batch", value=lambda n: 0.1, batch_s=2 * BATCH_S), n_trials=3,
        seed=0, direction="maximize", storage=storage, study_name="s", resume=True,
        run_options=options(clock),
    )  # fmt: skip
    fidelity = second.record.energy_fidelity
    assert fidelity["step_j"] == unit and fidelity["calibrated_on_trial"] == 0
    assert fidelity["from_earlier_session"] is True
    assert fidelity["step_j_source"].endswith("kept from an earlier session of the study")
    # its first trial, worse than trial 0 at the first rung, is stopped there (93.75 J)
    resumed = second.trials[0]
    assert resumed.number == 1 and resumed.state == "pruned"
    assert FIRST_RUNG * TRAINING_J <= resumed.energy_j < FIRST_RUNG * TRAINING_J + 2 * BATCH_J


def test_a_study_without_a_kept_unit_takes_it_from_its_first_complete_trial(
    isolated_project: Path,
) -> None:
    """A study whose trials ran in the user's own Optuna loop (``wattwise.optuna`` records
    each trial's energy in its user attributes) or under an older wattwise."""
    storage = f"sqlite:///{isolated_project / 'study.db'}"
    study = optuna.create_study(study_name="s", storage=storage, direction="maximize")
    for energy_j in (320.0, 640.0):
        trial = study.ask()
        trial.set_user_attr(ENERGY_ATTR, energy_j)
        study.tell(trial, 0.5)
    clock = ScriptedClock()
    result = wattwise.tune(
        training(clock, every="epoch", value=lambda n: 0.1), n_trials=3, seed=0,
        direction="maximize", storage=storage, study_name="s", resume=True,
        run_options=options(clock),
    )  # fmt: skip
    fidelity = result.record.energy_fidelity
    assert fidelity["step_j"] == 320.0 / ENERGY_STEPS_PER_TRAINING
    assert fidelity["calibrated_on_trial"] == 0 and fidelity["from_earlier_session"] is True
    kept = optuna.load_study(study_name="s", storage=storage).user_attrs[ENERGY_STEP_ATTR]
    assert kept["step_j"] == 10.0 and kept["trial"] == 0 and kept["source"] == "auto"


# -- trials running in parallel when the unit becomes known ---------------------------------

#: The scripted time of this process (each worker process has its own).
_NOW = [0.0]


class ProcessClock:
    """A scripted clock that pickles: it reads the module's ``_NOW`` in whatever process
    it is unpickled in, which the objective there advances."""

    def __call__(self) -> float:
        return _NOW[0]


STORAGE = "sqlite:///study.db"  # in the test's project, the workers' working directory


def wait_until(condition: Callable[[], bool], what: str, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            msg = f"{what} did not happen within {timeout_s} s"
            raise TimeoutError(msg)
        time.sleep(0.02)


def unit_known() -> bool:
    study = optuna.load_study(study_name="par", storage=STORAGE)
    return ENERGY_STEP_ATTR in study.user_attrs


def in_parallel(trial: Any) -> float:
    """Trial 0 trains fully once trial 1 has reported 5 batches; trial 1 then waits until
    the unit is known (trial 0 completed) and goes on."""
    trial.suggest_float("x", 0.0, 1.0)
    if trial.number == 0:
        wait_until(Path("reported-1").exists, "trial 1's first reports")
        for batch in range(EPOCHS * BATCHES):
            _NOW[0] += BATCH_S
            trial.report(0.9, batch)
        return 0.9
    for batch in range(EPOCHS * BATCHES):
        if batch == 5:
            Path("reported-1").touch()
            wait_until(unit_known, "the energy unit's calibration")
        _NOW[0] += BATCH_S
        report(trial, 0.1, batch)
    return 0.1


def test_reports_made_before_the_unit_was_known_reach_the_pruner_once_it_is() -> None:
    result = wattwise.tune(
        in_parallel, n_trials=2, seed=0, direction="maximize", executor="processes",
        n_workers=2, storage=STORAGE, study_name="par",
        run_options={"meters": [FakeMeter({"gpu:0": POWER_W}, clock=ProcessClock())],
                     "emit_warnings": False},
    )  # fmt: skip
    first, worse = result.trials
    assert (first.state, worse.state) == ("complete", "pruned")
    unit = first.energy_j / ENERGY_STEPS_PER_TRAINING
    assert result.record.energy_fidelity["step_j"] == unit == TRAINING_J / 32
    # trial 1's first five reports (5 to 25 J: steps 0 and 1) reached the pruner late
    seen = result.study.trials[1].intermediate_values
    assert {0, 1} <= set(seen)
    assert sorted(seen) == sorted({int(e / unit) for e in energies(worse.run_id)})
    stopped_at = worse.energy_j / first.energy_j
    assert FIRST_RUNG <= stopped_at < FIRST_RUNG + 1 / (EPOCHS * BATCHES)

"""Budgets use the prediction: a trial that would overshoot is stopped, or not started.

Real studies (``wattwise.tune``, inline, a real ledger) with a fake meter on a scripted
clock: every step of work costs exactly ``STEP_J`` joules, whatever the machine's load.
"""

from __future__ import annotations

from typing import Any

import optuna
import pytest

import wattwise
from study_support import ScriptedClock, scripted_run_options
from wattwise.store import open_store
from wattwise.tracking import predict_energy
from wattwise.tuning._budget import (
    WOULD_OVERSHOOT,
    Budget,
    Spent,
    start_would_overshoot,
    trial_would_overshoot,
)
from wattwise.tuning._progress import status_line

POWER_W = 80.0
STEP_S = 0.0625  # 5 J per step, exact in binary floating point
STEP_J = POWER_W * STEP_S
STEPS = 20  # a full trial: 100 J


def study(budget_j: float, *, declare: bool, **kwargs: Any) -> wattwise.tuning.TuneResult:
    clock = ScriptedClock()

    def objective(trial: Any) -> float:
        x = trial.suggest_float("x", 0.0, 1.0)
        if declare:
            trial.set_max_step(STEPS - 1)
        for step in range(STEPS):
            clock.t += STEP_S
            trial.report(x, step)
        return x

    return wattwise.tune(
        objective, pruner=optuna.pruners.NopPruner(), seed=0, n_trials=10,
        budget_kwh=budget_j / 3.6e6,
        run_options=scripted_run_options(clock, POWER_W),
        **kwargs,
    )  # fmt: skip


def test_a_trial_that_would_overshoot_is_not_started() -> None:
    # two full trials (200 J) leave 52 J: less than the 100 J a full trial has cost
    result = study(252.0, declare=False)
    assert result.stop_reason == "energy_budget"
    assert [(t.state, t.last_step) for t in result.trials] == [("complete", 19)] * 2
    assert result.spent.energy_j == pytest.approx(200.0, abs=1e-9)
    over = result.overshoot
    assert over["energy_j"] == 0.0  # nothing spent past the limit
    assert over["not_started"].startswith(f"{WOULD_OVERSHOOT} the energy budget: not started")
    assert "100 J" in over["not_started"] and "52.0 J is left" in over["not_started"]
    assert over["would_overshoot"] == []
    # the reason is in the study record, as stored in the ledger
    driver = open_store().get_run(result.study_id)
    assert driver.record["extra"]["study"]["overshoot"]["not_started"] == over["not_started"]


def test_a_running_trial_that_would_overshoot_is_stopped_at_its_third_report() -> None:
    # 52 J. The first trial runs at 5 J per step and declares 20 steps: after three reports
    # (15 J) it needs 85 J more, at least, and 37 J are left: stopped there.
    result = study(52.0, declare=True)
    assert result.stop_reason == "energy_budget"
    states = [(t.state, t.stopped_by, t.last_step) for t in result.trials]
    assert states == [("pruned", "budget", 2)]
    assert result.trials[0].energy_j == pytest.approx(15.0, abs=1e-9)
    assert result.spent.energy_j == pytest.approx(15.0, abs=1e-9)
    assert result.overshoot["energy_j"] == 0.0
    (stopped,) = result.overshoot["would_overshoot"]
    assert stopped["number"] == 0
    assert stopped["predicted_j"] == pytest.approx(100.0)
    assert stopped["low_j"] == pytest.approx(100.0)  # constant steps: no dispersion
    assert stopped["end_step"] == STEPS - 1
    assert stopped["reason"].startswith(WOULD_OVERSHOOT)
    # the trial's own record says why it stopped
    record = open_store().get_run(result.trials[0].run_id).record["extra"]["trial"]
    assert record["stopped_by"] == "budget"
    assert f"Trial 0 stopped: {WOULD_OVERSHOOT} the energy budget" in record["error"]
    # and no further trial starts: a full trial is predicted to cost 100 J, 37 J are left
    assert "not started" in result.overshoot["not_started"]


def test_without_a_known_end_the_prediction_does_not_stop_a_trial() -> None:
    # the first trial, no declared max step, no complete trial: its end is unknown
    result = study(52.0, declare=False)
    assert [(t.state, t.last_step) for t in result.trials] == [("pruned", 10)]
    assert result.overshoot["would_overshoot"] == []


def test_a_trial_that_fits_runs_to_its_end() -> None:
    result = study(1000.0, declare=True)
    assert all(t.state == "complete" for t in result.trials[:9])
    assert result.overshoot["would_overshoot"] == []


def test_the_rules_on_their_own() -> None:
    budget = Budget(energy_j=100.0)
    p = predict_energy([(0, 10.0), (1, 20.0), (2, 30.0)], end_step=9)  # 100 J in all
    assert p is not None
    assert trial_would_overshoot(budget, Spent(energy_j=30.0), p) is None  # 70 left = needed
    reason = trial_would_overshoot(budget, Spent(energy_j=31.0), p)
    assert reason is not None and "70.0 J more" in reason and "69.0 J is left" in reason
    assert trial_would_overshoot(Budget(n_trials=3), Spent(energy_j=1e9), p) is None
    assert trial_would_overshoot(budget, Spent(energy_j=99.0), None) is None
    assert start_would_overshoot(budget, Spent(energy_j=50.0), []) is None
    assert start_would_overshoot(budget, Spent(energy_j=50.0), [50.0]) is None
    assert start_would_overshoot(budget, Spent(energy_j=50.0), [60.0, 51.0]) is not None


def test_the_progress_line_shows_the_predictions() -> None:
    p = predict_energy([(0, 10.0), (1, 21.0), (2, 30.0), (3, 41.0)], end_step=9)
    assert p is not None
    line = status_line(
        counts={"complete": 1}, running=1, best=(0, 0.5), spent=Spent(energy_j=140.0),
        budget=Budget(energy_j=500.0), predictions={1: p, 2: None},
    )  # fmt: skip
    assert "predicted #1 ~103 J [" in line
    assert "#2" not in line


def test_the_tune_summary_says_why() -> None:
    """``wattwise tune`` prints the reason a trial was stopped and why no other started."""
    from wattwise.cli.commands.tune import summary

    text = summary(study(52.0, declare=True))
    assert f"  Trial #0 stopped: {WOULD_OVERSHOOT} the energy budget: it would need" in text
    assert f"  No further trial: {WOULD_OVERSHOOT} the energy budget: not started" in text

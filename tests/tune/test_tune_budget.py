"""Budgets in joules, grams and seconds: the study stops, overshoot stays bounded."""

from __future__ import annotations

import time
from typing import Any

import optuna
import pytest

import wattwise
from wattwise.exceptions import InvalidParameterError
from wattwise.store import RunStatus, open_store
from wattwise.testing import FakeMeter

POWER_W = 100.0  # whole-device ("gpu") fake power: every trial second costs exactly 100 J
STEP_S = 0.05
STEPS = 20  # a full trial: 20 reports, about 100 J


def fake_options() -> dict[str, Any]:
    return {"_meters": [FakeMeter({"gpu:0": POWER_W})], "interval_s": 0.05,
            "emit_warnings": False}  # fmt: skip


def slow_objective(trial: Any) -> float:
    x = trial.suggest_float("x", 0.0, 1.0)
    for step in range(STEPS):
        time.sleep(STEP_S)
        trial.report(x, step)
    return x


def run_study(**kwargs: Any) -> wattwise.tune.TuneResult:
    return wattwise.tune(
        slow_objective, pruner=optuna.pruners.NopPruner(), seed=0, n_trials=10,
        run_options=fake_options(), **kwargs,
    )  # fmt: skip


def test_energy_budget_stops_the_study_with_a_bounded_overshoot() -> None:
    budget_j = 250.0  # about two and a half trials
    result = run_study(budget_kwh=budget_j / 3.6e6)
    assert result.stop_reason == "energy_budget"
    states = [(t.state, t.stopped_by) for t in result.trials]
    # no trial starts once the budget is spent; the running one stops at its next report
    assert states == [("complete", None), ("complete", None), ("pruned", "budget")]
    assert result.spent.energy_j >= budget_j
    over = result.overshoot["energy_j"]
    assert over is not None and 0 <= over <= POWER_W * (STEP_S + 0.06)
    assert result.overshoot["running_trials_at_stop"] == 1
    assert over <= result.overshoot["bound_energy_j"] + POWER_W * 0.02
    # the driver has no GPU meter: the whole-device energy belongs to the trials
    assert result.summary["spent"]["driver_energy_j"] == 0.0
    assert result.summary["spent"]["trials_energy_j"] == pytest.approx(result.spent.energy_j)
    stopped = open_store().get_run(result.trials[-1].run_id)
    assert stopped.status is RunStatus.FINISHED
    assert stopped.record["extra"]["trial"]["state"] == "pruned"
    assert stopped.record["extra"]["trial"]["stopped_by"] == "budget"
    assert stopped.energy_j == pytest.approx(result.trials[-1].energy_j)


def test_carbon_budget_stops_the_study() -> None:
    with wattwise.track("probe", **fake_options()) as probe:
        time.sleep(0.1)
    g_per_j = probe.result.co2e_g / probe.result.energy_j
    budget_g = 150.0 * g_per_j  # about one and a half trials
    result = run_study(budget_co2e_g=budget_g)
    assert result.stop_reason == "carbon_budget"
    assert [t.state for t in result.trials] == ["complete", "pruned"]
    assert result.spent.co2e_g >= budget_g
    assert result.overshoot["co2e_g"] <= POWER_W * (STEP_S + 0.06) * g_per_j
    assert result.summary["budget"]["co2e_g"] == budget_g


def test_time_budget_stops_the_running_trial_at_its_next_report() -> None:
    result = run_study(timeout_s=1.5)  # a trial takes about 1 s
    assert result.stop_reason == "timeout"
    assert [t.state for t in result.trials] == ["complete", "pruned"]
    assert result.trials[-1].stopped_by == "budget"
    assert 0 <= result.overshoot["duration_s"] <= STEP_S + 0.5


def test_n_trials_alone_is_a_limit_and_the_summary_says_so() -> None:
    result = wattwise.tune(
        lambda t: t.suggest_float("x", 0, 1), n_trials=3, run_options=fake_options()
    )
    assert result.stop_reason == "n_trials" and len(result.trials) == 3
    assert result.overshoot["energy_j"] is None
    assert result.summary["budget"] == {
        "energy_kwh": None, "energy_j": None, "co2e_g": None, "timeout_s": None, "n_trials": 3,
    }  # fmt: skip


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        pytest.param({}, "wattwise.tune needs a limit: pass n_trials, budget_kwh", id="no-limit"),
        pytest.param(
            {"budget_kwh": -1},
            r"The 'budget_kwh' parameter of wattwise.tune must be a float in the range "
            r"\(0, inf\). Got -1 instead.",
            id="negative-kwh",
        ),
        pytest.param(
            {"budget_co2e_g": "lots"}, r"The 'budget_co2e_g' parameter .* Got 'lots' instead.",
            id="not-a-number",
        ),
        pytest.param({"n_trials": 0}, r"The 'n_trials' parameter .* Got 0 instead.", id="n0"),
        pytest.param(
            {"n_trials": 2, "executor": "gpu"},
            r"The 'executor' parameter of wattwise.tune must be one of 'inline', 'processes', "
            r"'ray'. Got 'gpu' instead.",
            id="executor",
        ),
        pytest.param(
            {"n_trials": 2, "n_workers": 2}, "The inline executor runs one trial at a time",
            id="inline-parallel",
        ),
        pytest.param(
            {"n_trials": 2, "direction": "up"}, r"The 'direction' parameter .* Got 'up'",
            id="direction",
        ),
        pytest.param(
            {"n_trials": 2, "run_options": {"store": "x"}}, "Got unknown keys \\['store'\\]",
            id="run-options",
        ),
    ],
)
def test_bad_parameters_are_refused_before_anything_runs(
    kwargs: dict[str, Any], match: str
) -> None:
    with pytest.raises(InvalidParameterError, match=match):
        wattwise.tune(slow_objective, **kwargs)
    assert open_store().list_runs() == []


def test_bad_search_space_entry_is_refused() -> None:
    with pytest.raises(InvalidParameterError, match=r"search space entry 'lr' must be"):
        wattwise.tune(slow_objective, {"lr": (1.0, 0.1)}, n_trials=1)

"""Budgets in joules, grams and seconds: the study stops, overshoot stays bounded."""

from __future__ import annotations

import time
from typing import Any

import optuna
import pytest

import wattwise
from study_support import ScriptedClock
from wattwise.carbon import intensity_for, operational_co2e_g, pue_for, resolve_location
from wattwise.exceptions import InvalidParameterError
from wattwise.store import RunStatus, open_store
from wattwise.testing import FakeMeter

POWER_W = 80.0  # whole-device ("gpu") fake power
STEP_S = 0.0625  # scripted seconds of work per report: 5 J, exact in binary floating point
STEP_J = POWER_W * STEP_S
STEPS = 20  # a full trial: 20 reports, 100 J
FR = resolve_location("FR")
G_PER_J = operational_co2e_g(1.0, intensity_for(FR), pue_for(FR))


def scripted_study(**kwargs: Any) -> wattwise.tuning.TuneResult:
    clock = ScriptedClock()

    def objective(trial: Any) -> float:
        x = trial.suggest_float("x", 0.0, 1.0)
        for step in range(STEPS):
            clock.advance(STEP_S)  # one step of work: exactly STEP_J joules
            trial.report(x, step)
        return x

    meter = FakeMeter({"gpu:0": POWER_W}, clock=clock)
    return wattwise.tune(
        objective, pruner=optuna.pruners.NopPruner(), seed=0, n_trials=10,
        run_options={"meter_instances": [meter], "emit_warnings": False},  # 0.1's spelling
        **kwargs,
    )  # fmt: skip


def fake_options() -> dict[str, Any]:
    return {"meters": [FakeMeter({"gpu:0": POWER_W})], "interval_s": 0.05,
            "emit_warnings": False}  # fmt: skip


def slow_objective(trial: Any) -> float:  # wall time is what a time budget measures
    x = trial.suggest_float("x", 0.0, 1.0)
    for step in range(STEPS):
        time.sleep(0.05)
        trial.report(x, step)
    return x


def test_energy_budget_stops_the_study_with_a_bounded_overshoot() -> None:
    # 52 J into the first trial. With no complete trial and no declared max step, its end is
    # unknown, so no prediction stops it early (tests/tuning/test_predict_budget.py has those)
    budget_j = 52.0
    result = scripted_study(budget_kwh=budget_j / 3.6e6)
    assert result.stop_reason == "energy_budget"
    # no trial starts once the budget is spent; the running one stops at its next report:
    # its 11th (step 10), where the study reaches 55 J >= 52 J
    states = [(t.state, t.stopped_by, t.last_step) for t in result.trials]
    assert states == [("pruned", "budget", 10)]
    assert [t.energy_j for t in result.trials] == pytest.approx([55.0], abs=1e-9)
    assert result.spent.energy_j == pytest.approx(55.0, abs=1e-9)
    over = result.overshoot
    assert over["energy_j"] == pytest.approx(3.0, abs=1e-6)
    assert over["running_trials_at_stop"] == 1
    assert over["max_report_interval_j"] == pytest.approx(STEP_J, abs=1e-9)
    assert over["bound_energy_j"] == pytest.approx(STEP_J, abs=1e-9)  # one trial, one step
    assert over["energy_j"] <= over["bound_energy_j"]
    assert over["would_overshoot"] == [] and over["not_started"] is None
    # the driver has no GPU meter: the whole-device energy belongs to the trials
    assert result.summary["spent"]["driver_energy_j"] == 0.0
    assert result.summary["spent"]["trials_energy_j"] == pytest.approx(result.spent.energy_j)
    stopped = open_store().get_run(result.trials[-1].run_id)
    assert stopped.status is RunStatus.FINISHED
    assert stopped.record["extra"]["trial"]["state"] == "pruned"
    assert stopped.record["extra"]["trial"]["stopped_by"] == "budget"
    assert stopped.energy_j == pytest.approx(55.0, abs=1e-9)


def test_carbon_budget_stops_the_study() -> None:
    budget_g = 152.0 * G_PER_J  # one full trial (100 J), then 52 J into the second
    result = scripted_study(budget_co2e_g=budget_g)
    assert result.stop_reason == "carbon_budget"
    states = [(t.state, t.stopped_by, t.last_step) for t in result.trials]
    assert states == [("complete", None, 19), ("pruned", "budget", 10)]
    assert [t.co2e_g for t in result.trials] == pytest.approx([100.0 * G_PER_J, 55.0 * G_PER_J])
    assert result.spent.co2e_g == pytest.approx(155.0 * G_PER_J)
    assert result.overshoot["co2e_g"] == pytest.approx(3.0 * G_PER_J)
    assert result.overshoot["co2e_g"] <= STEP_J * G_PER_J  # at most one report interval
    assert result.summary["budget"]["co2e_g"] == budget_g


def test_time_budget_stops_the_running_trial_at_its_next_report() -> None:
    # The first trial reports three times at once and is complete long before the limit
    # (a fraction of a second, even on a loaded machine); the second reports every 50 ms
    # until the limit stops it. The overshoot is bounded by what this study measured,
    # not by how fast the machine is assumed to be.
    report_calls: list[float] = []  # when each report of the second trial was called

    def objective(trial: Any) -> float:
        x = trial.suggest_float("x", 0.0, 1.0)
        if trial.number == 0:
            for step in range(3):
                trial.report(x, step)
            return x
        deadline = time.monotonic() + 120  # the limit stops it long before
        step = 0
        while time.monotonic() < deadline:
            time.sleep(0.05)
            report_calls.append(time.monotonic())
            trial.report(x, step)  # raises once the study's time is spent
            step += 1
        return x

    result = wattwise.tune(
        objective, pruner=optuna.pruners.NopPruner(), seed=0, n_trials=10,
        run_options=fake_options(), timeout_s=3.0,
    )  # fmt: skip
    ended = time.monotonic()
    assert result.stop_reason == "timeout"
    assert [t.state for t in result.trials] == ["complete", "pruned"], [
        (t.state, t.duration_s) for t in result.trials
    ]
    assert result.trials[-1].stopped_by == "budget"
    over = result.overshoot
    assert over["running_trials_at_stop"] == 1
    assert over["bound_duration_s"] == over["max_report_interval_s"] > 0
    # The report before the one that stopped the trial came before the limit, so the study
    # ended past it by at most one report interval (the longest the trial measured) plus
    # the wrap-up from the stopping report's call to the return of tune().
    wrap_up_s = ended - report_calls[-1]
    assert len(report_calls) >= 2
    assert 0 <= over["duration_s"] <= over["bound_duration_s"] + wrap_up_s


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
        pytest.param(
            {"n_trials": 2, "run_options": {"meter_instances": ["gpu-nvml"]}},
            r"The 'meter_instances' run option of wattwise.tune must be a list of "
            r"wattwise.meters.BaseMeter objects .* Got \['gpu-nvml'\] instead.",
            id="meter-instances",
        ),
        pytest.param(
            {"n_trials": 2, "run_options": {"meters": "gpu-nvml"}},
            r"The 'meters' run option of wattwise.tune must be a list of meter ids or "
            r"wattwise.meters.BaseMeter objects. Got 'gpu-nvml' instead; put it in a list.",
            id="meters-not-a-list",
        ),
        pytest.param(
            {"n_trials": 2, "run_options": {"_meters": [FakeMeter({"gpu:0": 1.0})]}},
            r"Got unknown keys \['_meters'\]", id="private-seam",
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

"""The search defaults chosen on benchmarks/tune: TPE (its first 10 trials random), asynchronous
successive halving (first rung at 6 steps of 1/32 of the first complete trial's energy, half
kept) with energy as the fidelity; the fidelity follows the pruner.

Energy from a fake meter on a scripted clock: every report interval costs exactly
``STEP_J``, whatever the machine's load (tests/tuning/test_fidelity_unit.py has the unit's
own tests)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import optuna
import pytest

import wattwise
from wattwise.cli import main
from wattwise.exceptions import InvalidParameterError
from wattwise.store import open_store
from wattwise.testing import FakeMeter
from wattwise.tuning import default_pruner, default_sampler
from wattwise.tuning._tuner import (
    DEFAULT_MIN_RESOURCE,
    DEFAULT_REDUCTION_FACTOR,
    ENERGY_STEPS_PER_TRAINING,
)

POWER_W = 100.0
STEP_S = 0.03125  # 3.125 J a report interval, exact in binary floating point
STEP_J = POWER_W * STEP_S


class ScriptedClock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


CLOCK = ScriptedClock()  # only differences count: one clock for every study of this file


def fake_options() -> dict[str, Any]:
    return {"meters": [FakeMeter({"gpu:0": POWER_W}, clock=CLOCK)], "emit_warnings": False}


REPORTS = 12


def constant(trial: Any) -> float:
    """Trial 0 scores 0.9 at every report, every later trial 0.1 (maximise); 3.125 J a step."""
    trial.suggest_float("x", 0.0, 1.0)
    value = 0.9 if trial.number == 0 else 0.1
    for step in range(REPORTS):
        CLOCK.t += STEP_S
        trial.report(value, step)
        if trial.should_prune():
            raise optuna.TrialPruned()
    return value


def test_the_default_constants() -> None:
    # the first rung at 6/32 = 0.1875 of a training, where benchmarks/tune placed it
    assert (DEFAULT_MIN_RESOURCE, ENERGY_STEPS_PER_TRAINING) == (6, 32)
    assert DEFAULT_REDUCTION_FACTOR == 2
    assert isinstance(default_pruner(), optuna.pruners.SuccessiveHalvingPruner)


def test_the_defaults_are_tpe_and_successive_halving_on_energy() -> None:
    result = wattwise.tune(constant, n_trials=3, direction="maximize", seed=0,
                           run_options=fake_options())  # fmt: skip
    record = result.record
    assert (record.sampler, record.pruner) == ("TPESampler", "SuccessiveHalvingPruner")
    fidelity = record.energy_fidelity
    assert fidelity["enabled"] is True
    # one step: 1/32 of the first complete trial's energy (12 reports: 37.5 J)
    assert result.trials[0].energy_j == REPORTS * STEP_J
    assert fidelity["step_j"] == REPORTS * STEP_J / ENERGY_STEPS_PER_TRAINING
    assert str(fidelity["step_j_source"]).startswith("auto: 1/32 of the energy")
    # the pruner saw joules: the steps Optuna holds are the energy in units of step_j
    energies = [v for _, k, v, _ in open_store().metrics(result.trials[0].run_id)
                if k == "energy_j"]  # fmt: skip
    seen = sorted(result.study.trials[0].intermediate_values)
    assert seen == sorted({int(e / fidelity["step_j"]) for e in energies})


def test_the_default_pruner_stops_a_worse_trial_at_its_first_rung() -> None:
    result = wattwise.tune(constant, n_trials=3, direction="maximize", seed=0,
                           run_options=fake_options())  # fmt: skip
    states = [t.state for t in result.trials]
    assert states == ["complete", "pruned", "pruned"]
    for trial in result.study.trials[1:]:
        # judged at the first rung: the pruner saw it reach 6 energy steps
        # (the first trial's values, 0.9, beat its 0.1 there)
        assert max(trial.intermediate_values) >= DEFAULT_MIN_RESOURCE
    # stopped at its first report past 6/32 of the first trial's energy: report 3 of 12
    assert [t.last_step for t in result.trials[1:]] == [2, 2]
    assert result.best is not None and result.best.number == 0
    assert sum(t.energy_j for t in result.trials[1:]) < result.trials[0].energy_j * 2


def test_the_default_pruner_waits_six_steps_before_judging() -> None:
    """A trial far behind the first one is not pruned before step 6, and is at step 6."""
    study = optuna.create_study(direction="maximize", pruner=default_pruner())
    first = study.ask()
    for step in range(1, 10):
        first.report(0.9, step)
        assert not first.should_prune()
    study.tell(first, 0.9)
    worse = study.ask()
    decisions = []
    for step in range(1, 10):
        worse.report(0.1, step)
        decisions.append(worse.should_prune())
        if decisions[-1]:
            break
    assert decisions == [False] * 5 + [True]  # steps 1-5 run on; judged at step 6


def test_a_pruner_given_leaves_the_fidelity_off() -> None:
    result = wattwise.tune(constant, pruner=optuna.pruners.NopPruner(), n_trials=2,
                           direction="maximize", run_options=fake_options())  # fmt: skip
    assert result.record.energy_fidelity["enabled"] is False
    assert sorted(result.study.trials[0].intermediate_values) == list(range(REPORTS))


def test_the_default_pruner_on_report_steps_when_asked() -> None:
    result = wattwise.tune(constant, n_trials=2, energy_fidelity=False, direction="maximize",
                           run_options=fake_options())  # fmt: skip
    assert result.record.pruner == "SuccessiveHalvingPruner"
    assert result.record.energy_fidelity["enabled"] is False
    assert sorted(result.study.trials[0].intermediate_values) == list(range(REPORTS))
    # at equal steps, trial 1 (0.1) loses to trial 0 (0.9) at the first rung, step 6
    assert result.trials[1].state == "pruned" and result.trials[1].last_step == 6


def test_energy_fidelity_must_be_a_bool_or_none() -> None:
    with pytest.raises(InvalidParameterError, match=r"'energy_fidelity'.*bool or None.*'yes'"):
        wattwise.tune(constant, n_trials=1, energy_fidelity="yes",  # type: ignore[arg-type]
                      run_options=fake_options())  # fmt: skip


def test_default_sampler_is_seeded_tpe() -> None:
    def draw(sampler: optuna.samplers.BaseSampler, n: int) -> list[float]:
        study = optuna.create_study(sampler=sampler)
        study.optimize(lambda t: (t.suggest_float("x", 0.0, 1.0) - 0.5) ** 2, n_trials=n)
        return [t.params["x"] for t in study.trials]

    ours = draw(default_sampler(seed=3), 12)
    assert ours == draw(optuna.samplers.TPESampler(seed=3), 12)
    assert ours == draw(default_sampler(seed=3), 12)  # seeded: the same trials again
    assert ours != draw(default_sampler(seed=4), 12)
    pruner = default_pruner()
    assert isinstance(pruner, optuna.pruners.SuccessiveHalvingPruner)


OBJECTIVE = '''
import optuna, time

def objective(trial):
    x = trial.suggest_float("x", -2.0, 2.0)
    for step in range(4):
        time.sleep(0.01)
        trial.report((x - 1) ** 2 + 1 / (step + 1), step)
        if trial.should_prune():
            raise optuna.TrialPruned()
    return (x - 1) ** 2
'''


@pytest.mark.parametrize(
    ("options", "pruner", "fidelity"),
    [
        ([], "SuccessiveHalvingPruner", True),
        (["--pruner", "hyperband"], "HyperbandPruner", False),
        (["--pruner", "halving", "--energy-fidelity"], "SuccessiveHalvingPruner", True),
        (["--no-energy-fidelity"], "SuccessiveHalvingPruner", False),
    ],
)
def test_cli_uses_the_same_defaults(
    isolated_project: Path, capsys: pytest.CaptureFixture[str], options: list[str],
    pruner: str, fidelity: bool,
) -> None:  # fmt: skip
    path = isolated_project / "search.py"
    path.write_text(OBJECTIVE)
    args = ["tune", str(path), "--n-trials", "2", "--seed", "0", "--json", *options]
    assert main(args) == 0
    data = json.loads(capsys.readouterr().out)
    assert (data["sampler"], data["pruner"]) == ("TPESampler", pruner)
    assert data["energy_fidelity"]["enabled"] is fidelity
    driver = open_store().get_run(data["study_id"])
    assert driver.params["seed"] == 0  # --seed reaches the default sampler

"""``wattwise show STUDY`` says what the pruner's step was: energy (the unit, and the trial
and energy it came from), report steps, a given unit, or not known; an older study record
without it prints nothing new (issue 12).

Real studies (``wattwise.tune``, real Optuna, the project's real SQLite ledger) with a fake
meter on a scripted clock, so each trial costs exactly ``TRAINING_J``; ``show`` as a real
subprocess for the main case, in process for the others.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from typing import Any

import optuna
from cli_support import call, cli

import wattwise
from study_support import ScriptedClock, scripted_run_options, study_record
from wattwise._units import energy
from wattwise.store import RunRecord, RunStatus, open_store
from wattwise.tuning import energy_step_j

POWER_W = 10.0
REPORT_S = 0.5  # 5 J between reports, exact in binary floating point
REPORTS = 8
TRAINING_J = POWER_W * REPORT_S * REPORTS  # 40 J, one whole trial
#: The default pruner's settings as the line gives them (the zero-valued ones left out).
SH = " (min_resource 6, reduction_factor 2)"


def study(
    *, n_trials: int = 3, prune_all: bool = False, **kwargs: Any
) -> wattwise.tuning.TuneResult:
    """A small real study whose trials cost ``TRAINING_J`` each when they run to the end."""
    clock = ScriptedClock()

    def objective(trial: Any) -> float:
        x = trial.suggest_float("x", 0.0, 1.0)
        for step in range(REPORTS):
            clock.t += REPORT_S
            trial.report(x, step)
            if prune_all and step == 1:
                raise optuna.TrialPruned()  # the objective's own decision: no trial completes
            if trial.should_prune():
                raise optuna.TrialPruned()
        return x

    return wattwise.tune(
        objective, n_trials=n_trials, seed=0, progress=False,
        run_options=scripted_run_options(clock, POWER_W),
        **kwargs,
    )  # fmt: skip


def fidelity_lines(out: str) -> list[str]:
    return [line for line in out.splitlines() if line.startswith("  fidelity  ")]


def test_the_energy_unit_its_trial_and_its_energy_are_shown() -> None:
    result = study()
    fid = study_record(result.study_id).energy_fidelity
    step_j, first_j, trial = (fid["step_j"], fid["calibrated_on_energy_j"],
                              fid["calibrated_on_trial"])  # fmt: skip
    # what the record holds is the first complete trial's measured energy, over 32
    first = result.trials[trial]
    assert first.state == "complete" and first_j == first.energy_j == TRAINING_J
    assert step_j == energy_step_j(first_j) == TRAINING_J / fid["steps_per_training"]

    shown = cli("show", result.study_id[:8])
    assert shown.code == 0, shown.err
    assert fidelity_lines(shown.out) == [
        f"  fidelity  energy: 1 step = {energy(step_j)} (1/{fid['steps_per_training']} of "
        f"trial {trial}'s {energy(first_j)}, its first complete trial); "
        f"pruner SuccessiveHalvingPruner{SH}"
    ]
    assert "1 step = 1.25 J (1/32 of trial 0's 40.0 J," in shown.out  # the figures, read
    # before the trials' table, after the run's own lines
    assert shown.out.index("  fidelity  ") < shown.out.index("  trials  ")

    assert study_record(result.study_id).pruner_settings == {
        "min_resource": 6, "reduction_factor": 2, "min_early_stopping_rate": 0,
        "bootstrap_count": 0,
    }  # fmt: skip
    data = json.loads(cli("show", result.study_id, "--json").out)
    assert data["fidelity"] == fidelity_lines(shown.out)[0].removeprefix("  fidelity  ")
    assert data["record"]["extra"]["study"]["energy_fidelity"]["step_j"] == step_j

    # a trial's run is not a study: no fidelity line
    assert fidelity_lines(call("show", first.run_id or "").out) == []
    assert "fidelity" not in json.loads(call("show", first.run_id or "", "--json").out)


def test_fidelity_off_says_report_steps() -> None:
    result = study(energy_fidelity=False, pruner=optuna.pruners.MedianPruner())
    assert study_record(result.study_id).energy_fidelity["enabled"] is False
    shown = call("show", result.study_id)
    assert shown.code == 0, shown.err
    assert fidelity_lines(shown.out) == [
        "  fidelity  report steps (the pruner sees each report's own step); pruner MedianPruner"
        " (interval_steps 1, n_min_trials 1, n_startup_trials 5)"
    ]


def test_a_given_unit_and_a_unit_never_known() -> None:
    given = study(energy_step_j=2.0, study_name="given")
    assert fidelity_lines(call("show", given.study_id).out) == [
        f"  fidelity  energy: 1 step = 2.00 J (given); pruner SuccessiveHalvingPruner{SH}"
    ]
    unknown = study(prune_all=True, study_name="unknown")
    assert study_record(unknown.study_id).energy_fidelity["step_j"] is None
    assert fidelity_lines(call("show", unknown.study_id).out) == [
        "  fidelity  energy: unit not known (no trial completed with a measured energy, so "
        f"no report reached the pruner); pruner SuccessiveHalvingPruner{SH}"
    ]


def insert_study(real: dict[str, Any], edit: Callable[[dict[str, Any]], None]) -> str:
    """A finished study driver whose record is a real study's (``real``), edited; returns
    its id."""
    summary = dict(real)
    edit(summary)
    store = open_store()
    try:
        run_id = uuid.uuid4().hex
        now = time.time()
        store.insert_run(RunRecord(
            id=run_id, name="older-study", kind="study", status=RunStatus.RUNNING,
            started_at=now - 10, heartbeat_at=now, host="testhost", pid=999_999, region="FR",
            record={"extra": {"study": summary}},
        ))  # fmt: skip
        store.flush_run(run_id, {"status": RunStatus.FINISHED, "ended_at": now,
                                 "duration_s": 10.0, "energy_j": 1.0})  # fmt: skip
    finally:
        store.close()
    return run_id


def test_an_older_record_without_pruner_settings_names_the_pruner_only() -> None:
    run_id = insert_study(study(n_trials=1).summary, lambda s: s.pop("pruner_settings"))
    (line,) = fidelity_lines(call("show", run_id).out)
    assert line.endswith("; pruner SuccessiveHalvingPruner")


def test_an_older_record_without_the_fidelity_prints_nothing_new() -> None:
    run_id = insert_study(study(n_trials=1).summary, lambda s: s.pop("energy_fidelity"))
    shown = call("show", run_id)
    assert shown.code == 0, shown.err
    assert shown.out.startswith(f"Run {run_id}  'older-study'")
    assert fidelity_lines(shown.out) == [] and "fidelity" not in shown.out
    data = json.loads(call("show", run_id, "--json").out)
    assert "fidelity" not in data


def test_a_malformed_fidelity_is_read_leniently() -> None:
    """A hand-written or damaged record: what it holds in words, never a traceback."""
    real = study(n_trials=1).summary
    for value, expected in (
        ({"enabled": "yes", "step_j": 1.0}, None),  # not a bool: not understood
        ("energy", None),  # not a mapping
        ({"enabled": True, "step_j": 0.5, "step_j_source": "set by hand"},
         f"energy: 1 step = 500 mJ (set by hand); pruner SuccessiveHalvingPruner{SH}"),
        ({"enabled": True, "step_j": 3.0, "steps_per_training": True,
          "calibrated_on_energy_j": 96.0},
         f"energy: 1 step = 3.00 J; pruner SuccessiveHalvingPruner{SH}"),
    ):  # fmt: skip

        def edit(s: dict[str, Any], value: object = value) -> None:
            s["energy_fidelity"] = value

        shown = call("show", insert_study(real, edit))
        assert shown.code == 0 and "Traceback" not in shown.err, shown.err
        lines = fidelity_lines(shown.out)
        assert lines == ([] if expected is None else [f"  fidelity  {expected}"]), value

"""Typed study and trial records: what the tuner writes is what the report reads, and
records written by older releases (today's JSON, partial or odd) still read."""

from __future__ import annotations

from typing import Any

from wattwise.tuning import StudyRecord, TrialRecord

# A driver's extra.study as wattwise 0.1 wrote it (keys and types verbatim).
STUDY_0_1: dict[str, Any] = {
    "study_id": "d1", "study_name": "lr-sweep", "direction": "maximize", "executor": "inline",
    "n_workers": 1, "sampler": "TPESampler", "pruner": "HyperbandPruner",
    "energy_fidelity": {"enabled": False, "step_j": None, "step_j_source": None},
    "n_trials": {"complete": 2, "pruned": 1, "fail": 0, "total": 3, "pruned_by_budget": 0},
    "budget": {"energy_j": None, "energy_kwh": None, "co2e_g": None, "timeout_s": None,
               "n_trials": 3},
    "spent": {"energy_j": 30.0, "co2e_g": 0.01, "duration_s": 2.5, "trials_energy_j": 28.0,
              "trials_co2e_g": 0.009, "driver_energy_j": 2.0, "driver_co2e_g": 0.001},
    "stop_reason": "n_trials", "overshoot": {"energy_j": 0.0},
    "best": {"number": 1, "run_id": "t1", "value": 0.9, "params": {"lr": 0.1},
             "energy_j": 10.0, "co2e_g": 0.003},
    "best_run_id": "t1", "pareto_run_ids": ["t0", "t1"],
    "pareto": [{"number": 0, "run_id": "t0", "state": "complete", "value": 0.8,
                "energy_j": 8.0}],
    "avoided_energy_j": 12.5, "avoided_co2e_g": 0.004,
    "avoided_by": {"pruner": 12.5, "budget": 0.0}, "avoided_method": "estimated: ...",
    "trial_run_ids": ["t0", "t1", "t2"],
}  # fmt: skip

TRIAL_0_1: dict[str, Any] = {
    "number": 2, "state": "pruned", "value": None, "last_step": 3, "last_value": 0.7,
    "n_reports": 4, "max_step": 9, "stopped_by": "pruner", "error": None,
    "params": {"lr": 0.01}, "user_attrs": {"note": "x"},
}  # fmt: skip


def test_records_written_by_0_1_read_typed_and_write_back_unchanged() -> None:
    study = StudyRecord.from_record({"extra": {"study": STUDY_0_1}})
    assert study is not None
    assert study.direction == "maximize" and study.best_run_id == "t1"
    assert study.avoided_energy_j == 12.5 and study.n_trials["pruned"] == 1
    assert study.pareto_run_ids == ["t0", "t1"] and study.trial_run_ids[-1] == "t2"
    assert study.to_record() == STUDY_0_1

    trial = TrialRecord.from_record({"extra": {"trial": TRIAL_0_1}})
    assert trial is not None
    assert (trial.state, trial.last_value, trial.stopped_by) == ("pruned", 0.7, "pruner")
    assert not trial.complete and trial.params == {"lr": 0.01}
    assert trial.to_record() == TRIAL_0_1


def test_crashed_trial_record_round_trips() -> None:
    data = {**TRIAL_0_1, "state": "fail", "crashed": True, "n_reports": None}
    trial = TrialRecord.from_dict(data)
    assert trial.crashed and trial.n_reports is None
    assert trial.to_record() == data


def test_partial_and_odd_old_records_read_with_defaults_and_keep_unknown_keys() -> None:
    raw = {"avoided_energy_j": "lots", "avoided_co2e_g": 0.2, "pareto_run_ids": ["a", 3],
           "directions": ["MINIMIZE"], "metric_name": "val_loss", "n_trials": {"total": True},
           "from_elsewhere": {"k": 1}}  # fmt: skip
    study = StudyRecord.from_dict(raw)
    assert study.avoided_energy_j is None and study.avoided_co2e_g == 0.2
    assert study.pareto_run_ids == ["a"] and study.n_trials == {}
    assert study.direction == "minimize" and study.metric == "val_loss"
    assert study.to_record()["from_elsewhere"] == {"k": 1}
    assert StudyRecord.from_dict(study.to_record()) == study

    trial = TrialRecord.from_dict({"state": "weird", "number": "3", "last_value": 1})
    assert trial.state == "fail" and trial.number is None and trial.last_value == 1.0


def test_runs_that_are_not_studies_or_trials_have_no_record() -> None:
    for record in ({}, {"extra": None}, {"extra": {"study": "x"}}, {"extra": {"other": {}}}):
        assert StudyRecord.from_record(record) is None
        assert TrialRecord.from_record(record) is None


def test_the_report_reads_what_the_tuner_wrote() -> None:
    import wattwise
    from wattwise.report import build_report
    from wattwise.store import open_store
    from wattwise.testing import FakeMeter

    def objective(trial: Any) -> float:
        x = trial.suggest_float("x", 0.0, 1.0)
        trial.report(x, 0)
        return x

    result = wattwise.tune(objective, n_trials=3, seed=1, direction="maximize",
                           run_options={"meters": [FakeMeter({"gpu:0": 20.0})],
                                        "interval_s": 0.05, "emit_warnings": False})  # fmt: skip
    store = open_store()
    driver = store.get_run(result.study_id)
    assert StudyRecord.from_record(driver.record) == result.record
    assert result.record.to_record() == result.summary
    for trial in result.trials:
        assert trial.run_id is not None
        record = TrialRecord.from_record(store.get_run(trial.run_id).record)
        assert record is not None and record.number == trial.number
        assert record.state == "complete" and record.value == trial.value
    (view,) = build_report(store, study=result.study_id).studies
    assert view.study == result.record and view.front_source == "recorded"
    assert view.direction == "maximize"
    assert {p.run_id for p in view.points if p.on_front} == set(result.record.pareto_run_ids)
    assert [p.run_id for p in view.points if p.is_best] == [result.best.run_id]  # type: ignore[union-attr]

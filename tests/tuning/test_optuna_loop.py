"""``wattwise.optuna`` in a user's own ``study.optimize`` loop, on a real RDB storage."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import optuna
import pytest

import wattwise
import wattwise.optuna as wo
from wattwise.exceptions import InvalidParameterError, WattwiseWarning
from wattwise.store import open_store
from wattwise.testing import FakeMeter
from wattwise.tuning import StudyRecord, TrialRecord

POWER_W = 50.0
STEP_S = 0.5
STEPS = 4
TRIAL_J = POWER_W * STEP_S * STEPS  # what one full trial costs on the scripted clock


class ScriptedClock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture(autouse=True)
def quiet_optuna() -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)


@pytest.fixture
def clock() -> ScriptedClock:
    return ScriptedClock()


@pytest.fixture
def storage(isolated_project: Path) -> str:
    return f"sqlite:///{isolated_project / 'study.db'}"


def options(clock: ScriptedClock) -> dict[str, Any]:
    return {"meters": [FakeMeter({"gpu:0": POWER_W}, clock=clock)], "interval_s": 0.05,
            "emit_warnings": False}  # fmt: skip


class BoomError(Exception):
    pass


def make_objective(clock: ScriptedClock, fates: dict[int, str]) -> Any:
    @wo.track_objective(**options(clock))
    def objective(trial: optuna.Trial) -> float:
        x = trial.suggest_float("x", 0.0, 1.0)
        trial.set_user_attr("mine", "kept")
        for step in range(STEPS):
            clock.t += STEP_S  # one step of work: POWER_W * STEP_S joules
            trial.report(x, step)
            fate = fates.get(trial.number)
            if fate == "prune" and step == 1:
                raise optuna.TrialPruned()
            if fate == "fail" and step == 2:
                msg = "bad batch"
                raise BoomError(msg)
        return x

    return objective


def test_each_trial_is_a_run_with_its_true_state_in_an_rdb_storage(
    clock: ScriptedClock, storage: str
) -> None:
    study = optuna.create_study(study_name="s", storage=storage, direction="maximize",
                                sampler=optuna.samplers.RandomSampler(seed=0))  # fmt: skip
    objective = make_objective(clock, {1: "prune", 2: "fail"})
    with wo.WattwiseCallback() as callback:
        study.optimize(objective, n_trials=4, callbacks=[callback], catch=(BoomError,))
    study_run_id = wo.study_run(study).id  # type: ignore[union-attr]

    # read back through Optuna, from the file, as optuna-dashboard would
    loaded = optuna.load_study(study_name="s", storage=storage)
    trials = loaded.get_trials()
    assert [t.state.name for t in trials] == ["COMPLETE", "PRUNED", "FAIL", "COMPLETE"]
    spent_steps = [STEPS, 2, 3, STEPS]
    for t, steps in zip(trials, spent_steps, strict=True):
        assert t.user_attrs[wo.ENERGY_ATTR] == pytest.approx(POWER_W * STEP_S * steps)
        assert t.user_attrs[wo.CO2E_ATTR] > 0
        assert t.user_attrs[wo.ENERGY_BAND_ATTR] >= 0
        assert t.user_attrs[wo.CO2E_BAND_ATTR] >= 0
        assert t.user_attrs[wo.STUDY_RUN_ATTR] == study_run_id
        assert t.user_attrs["mine"] == "kept"
    assert loaded.user_attrs[wo.STUDY_RUNS_ATTR] == [study_run_id]

    store = open_store()
    runs = {r.id: r for r in store.list_runs(study_id=study_run_id)}
    assert len(runs) == 4
    for t in trials:
        run = runs[t.user_attrs[wo.RUN_ATTR]]
        assert run.kind == "trial"
        assert run.energy_j == pytest.approx(t.user_attrs[wo.ENERGY_ATTR])
        record = TrialRecord.from_record(run.record)
        assert record is not None and record.number == t.number
        assert record.params == t.params and record.user_attrs == {"mine": "kept"}
    by_number = {TrialRecord.from_record(r.record).number: r for r in runs.values()}  # type: ignore[union-attr]
    pruned, failed = by_number[1], by_number[2]
    assert str(pruned.status) == "finished"
    assert TrialRecord.from_record(pruned.record).state == "pruned"  # type: ignore[union-attr]
    assert TrialRecord.from_record(pruned.record).stopped_by == "pruner"  # type: ignore[union-attr]
    assert str(failed.status) == "failed"
    fail_record = TrialRecord.from_record(failed.record)
    assert fail_record is not None and fail_record.state == "fail"
    assert fail_record.error == "BoomError: bad batch"
    complete = TrialRecord.from_record(by_number[0].record)
    assert complete is not None and complete.state == "complete"
    assert complete.value == trials[0].value

    driver = store.get_run(study_run_id)
    assert driver.kind == "study" and str(driver.status) == "finished"
    summary = StudyRecord.from_record(driver.record)
    assert summary is not None and summary.executor == "optuna"
    assert summary.n_trials == {"complete": 2, "pruned": 1, "fail": 1, "total": 4,
                                "pruned_by_budget": 0}  # fmt: skip
    best = max((t for t in trials if t.state.name == "COMPLETE"), key=lambda t: t.value or 0)
    assert summary.best is not None and summary.best["number"] == best.number
    assert summary.spent["trials_energy_j"] == pytest.approx(TRIAL_J * 2 + POWER_W * STEP_S * 5)
    assert summary.other["optuna"]["storage"] == storage
    assert sorted(summary.trial_run_ids) == sorted(runs)


def test_the_objectives_exception_and_value_pass_through_unchanged(
    clock: ScriptedClock,
) -> None:
    raised = BoomError("the job's own error")

    @wo.track_objective(**options(clock))
    def failing(trial: optuna.Trial) -> float:
        raise raised

    study = optuna.create_study()
    with pytest.raises(BoomError) as caught:
        study.optimize(failing, n_trials=1)
    assert caught.value is raised
    wo.end_study(study)

    @wo.track_objective(**options(clock))
    def returning(trial: optuna.Trial) -> float:
        return 0.125

    assert returning(optuna.trial.FixedTrial({})) == 0.125  # no study: runs untracked
    study = optuna.create_study()
    study.optimize(returning, n_trials=1)
    assert study.best_value == 0.125
    wo.end_study(study)


def test_trial_run_context_manager(clock: ScriptedClock, storage: str) -> None:
    def objective(trial: optuna.Trial) -> float:
        with wo.trial_run(trial, **options(clock)) as run:
            assert run is not None and run.kind == "trial"
            clock.t += 1.0
            run.log(loss=0.5)
            if trial.number == 1:
                raise optuna.TrialPruned()
        return 1.0

    study = optuna.create_study(study_name="cm", storage=storage)
    study.optimize(objective, n_trials=2)
    record = wo.end_study(study)
    assert record is not None and record.n_trials["pruned"] == 1
    trials = optuna.load_study(study_name="cm", storage=storage).get_trials()
    assert [t.state.name for t in trials] == ["COMPLETE", "PRUNED"]
    assert [t.user_attrs[wo.ENERGY_ATTR] for t in trials] == pytest.approx([POWER_W] * 2)


@pytest.mark.parametrize("unit", ["energy", "carbon"])
def test_a_budget_stops_the_study(clock: ScriptedClock, storage: str, unit: str) -> None:
    objective = make_objective(clock, {})
    probe = optuna.create_study(study_name="probe", storage=storage)
    probe.optimize(objective, n_trials=1)
    wo.end_study(probe)
    trial_g = probe.trials[0].user_attrs[wo.CO2E_ATTR]
    # 2.5 trials' worth: reached after the third trial, which must run to its end
    budget = {"budget_j": 2.5 * TRIAL_J} if unit == "energy" else {"budget_co2e_g": 2.5 * trial_g}
    study = optuna.create_study(study_name="b", storage=storage)
    with wo.WattwiseCallback(**budget) as callback:
        study.optimize(objective, n_trials=10, callbacks=[callback])
    assert len(study.trials) == 3
    assert all(t.state.name == "COMPLETE" for t in study.trials)
    assert callback.stop_reason == f"{unit}_budget"
    assert callback.spent.energy_j == pytest.approx(3 * TRIAL_J)
    # ended on leaving the block; closing again gives the same record and ends nothing new
    ids = study.user_attrs[wo.STUDY_RUNS_ATTR]
    assert [r.study_id for r in callback.close()] == ids
    driver = open_store().get_run(ids[0])
    summary = StudyRecord.from_record(driver.record)
    assert summary is not None and summary.stop_reason == f"{unit}_budget"


def test_budget_counts_earlier_sessions_and_sessions_are_linked(
    clock: ScriptedClock, storage: str
) -> None:
    objective = make_objective(clock, {})
    first = optuna.create_study(study_name="r", storage=storage)
    first.optimize(objective, n_trials=2)
    wo.end_study(first)
    # a later session (a new process would do the same): the budget sees the first two trials
    again = optuna.load_study(study_name="r", storage=storage)
    with wo.WattwiseCallback(budget_kwh=3.5 * TRIAL_J / 3.6e6) as callback:
        again.optimize(objective, n_trials=10, callbacks=[callback])
    assert len(again.trials) == 4 and callback.stop_reason == "energy_budget"
    ids = again.user_attrs[wo.STUDY_RUNS_ATTR]
    assert len(ids) == 2
    summary = StudyRecord.from_record(open_store().get_run(ids[1]).record)
    assert summary is not None and summary.other["optuna"]["previous_study_run_ids"] == ids[:1]
    assert summary.n_trials["total"] == 2  # this session's trials


def test_bad_arguments_are_one_line_errors() -> None:
    with pytest.raises(InvalidParameterError, match="unknown options \\['stor'\\]"):
        wo.track_objective(stor="x")
    with pytest.raises(InvalidParameterError, match="budget_j"):
        wo.WattwiseCallback(budget_j=-1)
    with pytest.raises(InvalidParameterError, match="not both"):
        wo.WattwiseCallback(budget_j=1, budget_kwh=1)


def test_importing_wattwise_optuna_stays_light() -> None:
    code = (
        "import sys, wattwise, wattwise.optuna\n"
        "print(sorted(m for m in ('optuna', 'numpy', 'torch', 'sqlalchemy') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, timeout=60)  # fmt: skip
    assert done.stdout.strip() == "[]"


def test_the_trial_run_is_the_active_run_and_a_non_number_fails_the_trial(
    clock: ScriptedClock,
) -> None:
    @wo.track_objective(**options(clock))
    def objective(trial: optuna.Trial) -> float | None:
        active = wattwise.tracking.active_run()
        assert active is not None and active.id == trial.user_attrs[wo.RUN_ATTR]
        wattwise.log(step=0, loss=0.25)  # lands in the trial's run
        clock.t += 1.0
        return None if trial.number == 1 else 1.0

    study = optuna.create_study()
    study.optimize(objective, n_trials=2)
    wo.end_study(study)
    assert [t.state.name for t in study.trials] == ["COMPLETE", "FAIL"]
    store = open_store()
    runs = [store.get_run(t.user_attrs[wo.RUN_ATTR]) for t in study.trials]
    assert [str(r.status) for r in runs] == ["finished", "failed"]
    assert [k for _, k, _, _ in store.metrics(runs[0].id)] == ["loss", "objective"]
    failed = TrialRecord.from_record(runs[1].record)
    assert failed is not None and failed.state == "fail"
    assert failed.error is not None and failed.error.startswith("The objective returned None")


def test_parallel_trials_in_threads(clock: ScriptedClock) -> None:
    study = optuna.create_study()
    study.optimize(make_objective(clock, {}), n_trials=4, n_jobs=2)
    record = wo.end_study(study)
    assert record is not None and record.n_trials["complete"] == 4
    run_ids = {t.user_attrs[wo.RUN_ATTR] for t in study.trials}
    assert len(run_ids) == 4 and set(record.trial_run_ids) == run_ids
    assert all(t.user_attrs[wo.ENERGY_ATTR] > 0 for t in study.trials)


SCRIPT = """
import optuna
import wattwise.optuna
from wattwise.testing import FakeMeter

optuna.logging.set_verbosity(optuna.logging.WARNING)

@wattwise.optuna.track_objective(meters=[FakeMeter({"gpu:0": 5.0})], emit_warnings=False)
def objective(trial):
    return trial.suggest_float("x", 0.0, 1.0)

study = optuna.create_study(study_name="exit", storage="sqlite:///exit.db")
study.optimize(objective, n_trials=2)
print(study.user_attrs[wattwise.optuna.STUDY_RUNS_ATTR][0])
"""


def test_a_study_run_left_open_is_ended_with_its_summary_at_exit(
    isolated_project: Path,
) -> None:
    (isolated_project / "search.py").write_text(SCRIPT)
    done = subprocess.run([sys.executable, "search.py"], capture_output=True, text=True,
                          timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr
    driver = open_store().get_run(done.stdout.strip())
    assert str(driver.status) == "finished"
    summary = StudyRecord.from_record(driver.record)
    assert summary is not None and summary.n_trials["complete"] == 2


def test_when_wattwise_cannot_track_the_trial_still_runs_with_a_warning() -> None:
    @wo.track_objective(meters=["no-such-meter"], emit_warnings=False)
    def objective(trial: optuna.Trial) -> float:
        return 2.0

    study = optuna.create_study()
    with pytest.warns(WattwiseWarning, match="trial 0 is not tracked"):
        study.optimize(objective, n_trials=1)
    assert study.trials[0].state.name == "COMPLETE" and study.best_value == 2.0
    assert wo.ENERGY_ATTR not in study.trials[0].user_attrs

    plain = optuna.create_study()  # a callback without the wrapper: it says what is missing
    with pytest.warns(WattwiseWarning, match="1 trial\\(s\\) of study .* no energy figure"):
        plain.optimize(lambda trial: 1.0, n_trials=1, callbacks=[wo.WattwiseCallback()])


def test_a_journal_storage_works_too(clock: ScriptedClock, isolated_project: Path) -> None:
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    path = str(isolated_project / "journal.log")
    study = optuna.create_study(study_name="j", storage=JournalStorage(JournalFileBackend(path)))
    with wo.WattwiseCallback(budget_j=1.5 * TRIAL_J) as callback:
        study.optimize(make_objective(clock, {1: "prune"}), n_trials=5, callbacks=[callback])
    again = optuna.load_study(study_name="j", storage=JournalStorage(JournalFileBackend(path)))
    assert [t.state.name for t in again.trials] == ["COMPLETE", "PRUNED"]
    assert [t.user_attrs[wo.ENERGY_ATTR] for t in again.trials] == pytest.approx(
        [TRIAL_J, POWER_W * STEP_S * 2]
    )
    assert callback.stop_reason == "energy_budget"
    summary = StudyRecord.from_record(
        open_store().get_run(again.user_attrs[wo.STUDY_RUNS_ATTR][0]).record
    )
    assert summary is not None
    assert summary.other["optuna"]["storage"] == f"JournalFileBackend({path})"

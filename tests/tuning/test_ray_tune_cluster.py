"""wattwise in Ray Tune loops and Ray studies, on a real local Ray cluster (one per module).

Trials are measured in their Ray workers with a fake GPU meter (20 W whole-device), so the
energy of a trial is 20 W × its run's duration; everything else is real: Ray, Ray Tune,
the ledger (SQLite), the workers' processes.
"""

from __future__ import annotations

import itertools
import os
import sys
import time
from collections.abc import Iterator
from typing import Any, NamedTuple

import pytest

import wattwise
import wattwise.ray_tune as wr
from energy_bounds import assert_whole_device_energy
from ray_support import start_local_ray
from wattwise.store import RunStatus, open_store
from wattwise.testing import FakeMeter
from wattwise.tuning import RayPlacement, StudyRecord, TrialRecord

pytestmark = pytest.mark.ray
ray = pytest.importorskip("ray")
try:  # Ray Tune needs Ray's "tune" extra (pandas, pyarrow): pip install 'ray[tune]'
    from ray import tune
except ImportError as err:
    tune = None
    NO_TUNE = f"Ray Tune cannot be imported ({err}); install it with pip install 'ray[tune]'"
else:
    NO_TUNE = ""
needs_tune = pytest.mark.skipif(tune is None, reason=NO_TUNE)

POWER_W = 20.0


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[str]:
    """A local cluster of 2 CPUs; yields the driver's node id (the only node)."""
    # Ray workers cannot import this test module: its functions travel by value.
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    start_local_ray(ray)
    yield ray.get_runtime_context().get_node_id()
    ray.shutdown()


def run_options() -> dict[str, Any]:
    return {"meters": [FakeMeter({"gpu:0": POWER_W})], "interval_s": 0.05, "region": "FR",
            "emit_warnings": False}  # fmt: skip


def epochs(config: dict[str, Any]) -> None:
    """A tiny trainable: ``n`` epochs of 50 ms, loss = x × epoch; x < 0 diverges at epoch 2."""
    for epoch in range(int(config["n"])):
        time.sleep(0.05)
        if config["x"] < 0 and epoch == 2:
            msg = f"diverged at epoch {epoch}"
            raise ValueError(msg)
        tune.report({"loss": config["x"] * epoch, "epoch": epoch})


def fit(trainable: Any, space: dict[str, Any], tmp_path: Any, **run_config: Any) -> Any:
    tuner = tune.Tuner(
        trainable, param_space=space,
        tune_config=tune.TuneConfig(metric="loss", mode="min", reuse_actors=False),
        run_config=tune.RunConfig(storage_path=str(tmp_path / "ray_results"), verbose=0,
                                  **run_config),
    )  # fmt: skip
    return tuner.fit()


@needs_tune
def test_each_trial_is_measured_in_its_worker_and_the_callback_books_the_study(
    ray_cluster: str, tmp_path: Any
) -> None:
    callback = wr.WattwiseCallback()
    grid = fit(
        wr.track_trainable(epochs, **run_options()),
        {"x": tune.grid_search([1.0, -1.0]), "n": 4}, tmp_path, callbacks=[callback],
    )  # fmt: skip
    assert len(grid) == 2 and len(grid.errors) == 1
    # The failing trial failed as it would have without wattwise: its own exception.
    assert "ValueError: diverged at epoch 2" in str(grid.errors[0])
    store = open_store()
    driver_job = ray.get_runtime_context().get_job_id()
    expected = {1.0: (4, RunStatus.FINISHED, "complete"), -1.0: (2, RunStatus.FAILED, "fail")}
    for result in grid:
        x = result.config["x"]
        reports, status, state = expected[x]
        # The trial's own results are untouched; energy was added to each of them.
        frame = result.metrics_dataframe
        assert list(frame["loss"]) == [x * e for e in range(reports)]
        energies = list(frame[wr.ENERGY_KEY])
        assert len(energies) == reports
        assert all(b > a > 0 for a, b in itertools.pairwise(energies))
        run = store.get_run(result.metrics[wr.RUN_KEY])
        assert run.kind == "trial" and run.status is status
        assert run.pid != os.getpid()  # measured in the Ray worker, not in the driver
        assert run.study_id == callback.study_id
        placement = RayPlacement.from_record(run.record)
        assert placement is not None
        assert placement.node_id == ray_cluster == result.metrics[wr.NODE_KEY]
        assert placement.job_id == driver_job and placement.trial_id == result.metrics["trial_id"]
        trial = TrialRecord.from_record(run.record)
        assert trial is not None and (trial.state, trial.n_reports) == (state, reports)
        if state == "fail":
            assert trial.error == "ValueError: diverged at epoch 2"
        assert run.params["x"] == x
        # 20 W on the whole (fake) GPU: the run's energy is 20 W over the time its meter
        # was read, bounded by the run's own samples and duration (tests/energy_bounds.py:
        # a loaded machine's slow start or wrap-up never makes that a flake), and the last
        # report saw part of it.
        assert_whole_device_energy(store, run, POWER_W)
        assert energies[-1] <= run.energy_j
        books = callback.trials[result.metrics["trial_id"]]
        assert (books.run_id, books.node_id, books.state) == (run.id, ray_cluster, state)
        assert (books.energy_j, books.co2e_g, books.source) == (run.energy_j, run.co2e_g,
                                                               "ledger")  # fmt: skip
    trials = store.list_runs(study_id=callback.study_id)
    assert len(trials) == 2
    total = sum(r.energy_j for r in trials)
    assert callback.spent().energy_j == pytest.approx(total)
    by_node = callback.by_node()
    assert list(by_node) == [ray_cluster] and by_node[ray_cluster]["trials"] == 2
    assert by_node[ray_cluster]["energy_j"] == pytest.approx(total)
    # The study run: written when the experiment ended, with the books in its record.
    study = store.get_run(callback.study_id)
    assert study.kind == "study" and study.status is RunStatus.FINISHED
    assert study.energy_j == 0.0  # it measures nothing itself
    record = StudyRecord.from_record(study.record)
    assert record == callback.record and record is not None
    assert record.executor == "ray_tune"
    assert (record.n_trials["complete"], record.n_trials["fail"]) == (1, 1)
    assert sorted(record.trial_run_ids) == sorted(r.id for r in trials)
    assert record.nodes == StudyRecord.node_totals(trials) == by_node
    assert record.spent["trials_energy_j"] == pytest.approx(total)


class Judged(NamedTuple):
    """One result the budget stopper judged: whose, its epoch, the spending then, the verdict."""

    trial_id: str
    epoch: int | None
    spent_j: float
    stop: bool


def recording_stopper(budget_kwh: float) -> Any:
    """A ``BudgetStopper`` that also records each result it judged (in ``judged``)."""

    class RecordingStopper(wr.BudgetStopper):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__(budget_kwh=budget_kwh)
            self.judged: list[Judged] = []

        def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
            stop = bool(super().__call__(trial_id, result))
            self.judged.append(Judged(str(trial_id), result.get("epoch"),
                                      self.spent().energy_j, stop))  # fmt: skip
            return stop

    return RecordingStopper()


# Ray Tune leaves the result.json of a trial stopped this way to the garbage collector.
@pytest.mark.filterwarnings("ignore:unclosed file:ResourceWarning")
@needs_tune
def test_the_budget_stopper_ends_the_experiment_once_the_trials_spent_it(
    ray_cluster: str, tmp_path: Any
) -> None:
    budget_j = 4.0  # each 50 ms epoch costs about 1 J at 20 W; a whole trial about 60 J
    n = 60
    stopper = recording_stopper(budget_j / 3.6e6)
    callback = wr.WattwiseCallback()
    grid = fit(
        wr.track_trainable(epochs, **run_options()),
        {"x": tune.grid_search([1.0, 2.0]), "n": n}, tmp_path, callbacks=[callback],
        stop=stopper,
    )  # fmt: skip
    assert not grid.errors
    assert stopper.exhausted == "energy_budget"
    assert stopper.spent().energy_j >= budget_j
    # The stop was decided at the first result that brought the trials' spending to the
    # budget, not before, and held for every result judged after it.
    judged: list[Judged] = stopper.judged
    decided = next(i for i, j in enumerate(judged) if j.stop)
    assert judged[decided].spent_j >= budget_j
    assert all(j.spent_j < budget_j for j in judged[:decided])
    assert all(j.stop for j in judged[decided:])
    # Once stopped, a trial's results are judged no more: after the decision, at most the
    # one result of each other trial that was already on its way, told to stop too.
    after = [j.trial_id for j in judged[decided + 1 :]]
    assert len(after) == len(set(after)) and judged[decided].trial_id not in after
    # Each trial's last result is the last one the stopper judged (one may not have reported).
    last_epoch = {j.trial_id: j.epoch for j in judged}
    for result in grid:
        if "epoch" in result.metrics:
            assert result.metrics["epoch"] == last_epoch[result.metrics["trial_id"]]
    n_judged = {t: sum(j.trial_id == t for j in judged) for t in last_epoch}
    store = open_store()
    runs = store.list_runs(study_id=callback.study_id)
    assert runs and {r.metrics[wr.RUN_KEY] for r in grid if wr.RUN_KEY in r.metrics} <= {
        r.id for r in runs
    }
    for run in runs:
        # Tune ended the trial's actor; its run was finished first, with what it spent.
        assert run.status is RunStatus.FINISHED
        # It spent 20 W over its own time, no more. (Not a fixed figure: a loaded machine
        # takes seconds to start and stop a Ray actor, all of it metered.)
        assert run.energy_j > 0
        assert_whole_device_energy(store, run, POWER_W)
        trial = TrialRecord.from_record(run.record)
        assert trial is not None and (trial.state, trial.stopped_by) == ("pruned", "ray_tune")
        # The trial went on no further than the stop allowed: it made the reports the
        # stopper judged and at most one more (with Ray Tune's default result buffer of one,
        # its function trainable waits in each report until the driver, having judged the
        # last result, asks for the next: when the stop came it could be one report ahead,
        # never more), far from its full length.
        placement = RayPlacement.from_record(run.record)
        assert placement is not None and placement.trial_id is not None
        assert trial.n_reports is not None
        assert trial.n_reports <= n_judged.get(placement.trial_id, 0) + 1 < n
    for books in callback.trials.values():
        if books.run_id is not None:
            assert (books.state, books.source) == ("pruned", "ledger")
    # What the stopper counted is what the trials reported; the ledger has a little more
    # (each trial's time after its last report).
    assert stopper.spent().energy_j <= sum(r.energy_j for r in runs) + 1e-9


def quadratic(trial: Any) -> float:
    x = trial.suggest_float("x", -1.0, 1.0)
    for step in range(3):
        time.sleep(0.02)
        trial.report((x - 0.2) ** 2 + 1.0 / (step + 1), step)
    return (x - 0.2) ** 2


def test_a_ray_study_records_each_trials_node_and_totals_per_node(ray_cluster: str) -> None:
    from wattwise.cli.commands.tune import summary

    result = wattwise.tune(
        quadratic, n_trials=3, executor="ray", n_workers=2, seed=0, run_options=run_options()
    )
    store = open_store()
    trials = store.list_runs(study_id=result.study_id)
    assert len(trials) == 3
    job = ray.get_runtime_context().get_job_id()
    for run in trials:
        placement = RayPlacement.from_record(run.record)
        assert placement is not None
        assert (placement.node_id, placement.job_id) == (ray_cluster, job)
    nodes = result.record.nodes
    assert list(nodes) == [ray_cluster]
    assert nodes[ray_cluster]["trials"] == 3
    assert nodes[ray_cluster]["energy_j"] == pytest.approx(sum(r.energy_j for r in trials))
    assert nodes[ray_cluster]["co2e_g"] == pytest.approx(sum(r.co2e_g for r in trials))
    driver = store.get_run(result.study_id)
    stored = StudyRecord.from_record(driver.record)
    assert stored is not None and stored.nodes == nodes
    text = summary(result)
    assert "Trials per Ray node" in text and ray_cluster[:12] in text

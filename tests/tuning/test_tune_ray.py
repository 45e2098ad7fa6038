"""A small study through a real local Ray cluster."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import Any

import optuna
import pytest

import wattwise
from ray_support import start_local_ray
from wattwise.store import open_store
from wattwise.testing import FakeMeter

pytestmark = pytest.mark.ray
ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[None]:
    start_local_ray(ray)
    yield
    ray.shutdown()


def quadratic(trial: Any) -> float:
    x = trial.suggest_float("x", -1.0, 1.0)
    for step in range(4):
        time.sleep(0.02)
        trial.report((x - 0.2) ** 2 + 1.0 / (step + 1), step)
        if trial.should_prune():
            raise optuna.TrialPruned()
    return (x - 0.2) ** 2


def test_a_study_runs_through_ray_actors_metered_where_they_run(ray_cluster: None) -> None:
    result = wattwise.tune(
        quadratic, n_trials=6, executor="ray", n_workers=2, seed=0,
        run_options={"meters": [FakeMeter({"gpu:0": 20.0})], "interval_s": 0.05,
                     "emit_warnings": False},
    )  # fmt: skip
    assert ray.is_initialized()  # the study used the cluster it found, and left it up
    assert result.stop_reason == "n_trials" and len(result.trials) == 6
    assert {t.state for t in result.trials} <= {"complete", "pruned"}
    # Every trial got its own suggestion, ran the objective at it inside an actor, and its
    # reports reached the driver's Optuna study; the best is the lowest objective value.
    xs = [t.params["x"] for t in result.trials]
    assert len(set(xs)) == 6 and all(-1.0 <= x <= 1.0 for x in xs)
    complete = [t for t in result.trials if t.state == "complete"]
    assert complete  # the first trial to reach each rung is promoted: one runs to its end
    for t in complete:
        assert t.value == pytest.approx((t.params["x"] - 0.2) ** 2)
    by_number = {t.number: t for t in result.study.trials}
    for t in result.trials:
        reported = by_number[t.number].intermediate_values
        assert by_number[t.number].params == t.params and reported
        # Keyed by the fidelity axis (energy by default), so each value is one of the
        # objective's four reports, whatever step Optuna filed it under.
        expected = [(t.params["x"] - 0.2) ** 2 + 1.0 / (step + 1) for step in range(4)]
        for value in reported.values():
            assert any(value == pytest.approx(e) for e in expected), (value, expected)
    assert result.best is not None
    assert result.best.value == min(t.value for t in complete if t.value is not None)
    assert result.study.best_value == pytest.approx(result.best.value)
    assert result.best_params == result.study.best_params
    store = open_store()
    trials = [store.get_run(t.run_id) for t in result.trials]
    assert all(r.study_id == result.study_id and r.energy_j > 0 for r in trials)
    assert all(r.pid != os.getpid() for r in trials)  # metered inside the Ray actors
    assert len({r.pid for r in trials}) == 2
    driver = store.get_run(result.study_id)
    assert driver.record["extra"]["study"]["executor"] == "ray"
    assert driver.record["extra"]["study"]["n_workers"] == 2

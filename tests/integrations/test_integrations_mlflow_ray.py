"""A study on Ray, logged into MLflow: each trial, run in a Ray actor, is a nested MLflow run
under the study's (the real local MLflow store and a real local Ray cluster)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ray_support import start_local_ray
from wattwise.store import open_store
from wattwise.testing import FakeMeter

pytestmark = [
    pytest.mark.ray,
    pytest.mark.filterwarnings("ignore::FutureWarning"),  # MLflow's own chatter
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
]
mlflow = pytest.importorskip(
    "mlflow", reason="MLflow is not installed (pip install 'wattwise[interop]')"
)
pytest.importorskip("sqlalchemy", reason="MLflow's sqlite store needs sqlalchemy and alembic")
ray = pytest.importorskip("ray")


@pytest.fixture
def ray_cluster() -> Iterator[None]:
    start_local_ray(ray)
    yield
    ray.shutdown()


def reports_twice(trial: Any) -> float:
    x = float(trial.suggest_float("x", -1.0, 1.0))
    for step in range(2):
        end = time.perf_counter() + 0.1
        while time.perf_counter() < end:
            pass
        trial.report(x * x + 1.0 / (step + 1), step)
    return x * x


def test_trials_in_ray_actors_are_nested_runs(
    tmp_path: Path, ray_cluster: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlflow.tracking import MlflowClient

    from wattwise.integrations.mlflow import wait_for_writes
    from wattwise.tuning import tune

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.delenv("WATTWISE_MLFLOW", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)  # the actors get it handed
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment("search-on-ray")  # not the experiment an earlier test set
    with mlflow.start_run(run_name="search-on-ray") as active:
        result = tune(reports_twice, n_trials=2, seed=0, progress=False, executor="ray",
                      n_workers=1, run_options={"meters": [FakeMeter({"cpu:0": 20.0})],
                                                "interval_s": 0.05})  # fmt: skip
        wait_for_writes(60)
    client = MlflowClient(uri)
    runs = client.search_runs([active.info.experiment_id])
    nested = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == active.info.run_id]
    assert len(runs) == 3 and len(nested) == 2  # one actor, two trials (MLflow loaded once)
    ledger = open_store()
    assert {r.data.tags["wattwise.run_id"] for r in nested} == {t.run_id for t in result.trials}
    for r in nested:
        recorded = ledger.get_run(r.data.tags["wattwise.run_id"])
        assert recorded.pid != os.getpid() and recorded.energy_j > 0  # in an actor
        assert r.info.status == "FINISHED"  # its writes done before the actor was killed
        assert r.data.metrics["wattwise/total_energy_j"] == pytest.approx(recorded.energy_j)

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import wattwise
from wattwise.exceptions import StoreWarning
from wattwise.store import open_store
from wattwise.testing import FakeMeter

mlflow = pytest.importorskip(
    "mlflow", reason="MLflow is not installed (pip install 'wattwise[interop]')"
)
pytest.importorskip("sqlalchemy", reason="MLflow's sqlite store needs sqlalchemy and alembic")

pytestmark = [
    # MLflow's own chatter about its store and pydantic, not ours
    pytest.mark.filterwarnings("ignore::FutureWarning"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
]


@pytest.fixture(scope="module")
def mlflow_db(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One real MLflow sqlite store for these tests (made once: its migrations are slow)."""
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"
    MlflowClient(uri).search_experiments()
    return uri


@pytest.fixture
def tracking_uri(mlflow_db: str, request: pytest.FixtureRequest,
                 monkeypatch: pytest.MonkeyPatch) -> str:  # fmt: skip
    """The store, an experiment of the test's own, snapshots at every step."""
    import wattwise.integrations.mlflow as live

    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_db)
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", request.node.name)
    monkeypatch.delenv("WATTWISE_MLFLOW", raising=False)
    monkeypatch.setattr(live, "MIN_SNAPSHOT_S", 0.0)
    mlflow.set_tracking_uri(mlflow_db)
    mlflow.set_experiment(request.node.name)
    return mlflow_db


def _meter() -> FakeMeter:
    return FakeMeter({"cpu:0": 20.0}, method="model", band_fraction=0.4)


def _busy(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def _history(client: Any, run_id: str, key: str) -> dict[int, float]:
    return {m.step: m.value for m in client.get_metric_history(run_id, key)}


def test_energy_goes_live_into_the_active_mlflow_run(tracking_uri: str) -> None:
    from mlflow.tracking import MlflowClient

    from wattwise.integrations.mlflow import wait_for_writes

    with mlflow.start_run(run_name="users-run") as active:
        mlflow.log_param("lr", 0.1)
        with wattwise.track("fit", meters=[_meter()], interval_s=0.05) as run:
            for step in (1, 2, 3):
                _busy(0.1)
                run.log(step=step, val_acc=0.5 + step / 10)
            run.log(step=3, **{"wattwise/epoch_energy_j": 1.5})  # as a callback logs
        wait_for_writes(60)
        client = MlflowClient(tracking_uri)
        ml = client.get_run(active.info.run_id)
        assert ml.info.status == "RUNNING"  # the user's run: wattwise does not end it
    client = MlflowClient(tracking_uri)
    (only,) = client.search_runs([active.info.experiment_id])  # one run, not two
    assert only.info.run_id == active.info.run_id and only.info.status == "FINISHED"
    energy = _history(client, only.info.run_id, "wattwise/energy_j")
    assert sorted(energy) == [1, 2, 3] and 0 < energy[1] < energy[2] < energy[3]
    assert energy[3] <= run.result.energy_j
    assert set(_history(client, only.info.run_id, "wattwise/co2e_g")) == {1, 2, 3}
    assert _history(client, only.info.run_id, "wattwise/epoch_energy_j") == {3: 1.5}
    assert "val_acc" not in only.data.metrics  # the user's metrics are the user's to log
    assert only.data.metrics["wattwise/total_energy_j"] == pytest.approx(run.result.energy_j)
    assert only.data.metrics["wattwise/total_co2e_g"] == pytest.approx(run.result.co2e_g)
    assert only.data.metrics["wattwise/total_energy_j/cpu"] == pytest.approx(
        run.result.energy_j)
    tags = only.data.tags
    assert tags["wattwise.run_id"] == run.id and tags["wattwise.status"] == "finished"
    assert tags["wattwise.method"] == "cpu: model (fake)"
    assert run.intensity.dataset in tags["wattwise.intensity_source"]
    assert only.data.params == {"lr": "0.1"}
    # exporting the ledger afterwards adds to that same MLflow run
    from wattwise.report import log_to_mlflow

    (done,) = log_to_mlflow(open_store(), [open_store().get_run(run.id)],
                            tracking_uri=tracking_uri)  # fmt: skip
    assert done.mlflow_run_id == active.info.run_id and not done.created
    assert len(client.search_runs([active.info.experiment_id])) == 1


def test_study_trials_are_nested_runs(tracking_uri: str) -> None:
    from mlflow.tracking import MlflowClient

    from wattwise.integrations.mlflow import wait_for_writes
    from wattwise.tuning import tune

    def objective(trial: Any) -> float:
        x = float(trial.suggest_float("x", -1.0, 1.0))
        _busy(0.05)
        return x * x

    with mlflow.start_run(run_name="search") as active:
        result = tune(objective, n_trials=3, seed=0, progress=False,
                      run_options={"meters": [_meter()], "interval_s": 0.05})  # fmt: skip
        wait_for_writes(60)
    client = MlflowClient(tracking_uri)
    runs = client.search_runs([active.info.experiment_id])
    nested = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == active.info.run_id]
    trial_ids = {t.run_id for t in result.trials}
    assert len(nested) == 3 and {r.data.tags["wattwise.run_id"] for r in nested} == trial_ids
    ledger = open_store()
    for r in nested:
        assert r.info.status == "FINISHED" and r.data.tags["wattwise.kind"] == "trial"
        recorded = ledger.get_run(r.data.tags["wattwise.run_id"])
        assert r.data.metrics["wattwise/total_energy_j"] == pytest.approx(recorded.energy_j)
    study = client.get_run(active.info.run_id)
    assert study.data.tags["wattwise.kind"] == "study"


def test_wattwise_mlflow_makes_its_own_run(tracking_uri: str,
                                           monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    from mlflow.tracking import MlflowClient

    from wattwise.integrations.mlflow import wait_for_writes

    monkeypatch.setenv("WATTWISE_MLFLOW", "1")
    with wattwise.track("own", meters=[_meter()], interval_s=0.05) as run:
        run.log(step=1, loss=0.7)
        _busy(0.1)
        run.log(step=2, loss=0.5)
    wait_for_writes(60)
    client = MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name("test_wattwise_mlflow_makes_its_own_run")
    (ml,) = client.search_runs([experiment.experiment_id])
    assert ml.info.run_name == "own" and ml.info.status == "FINISHED"
    assert _history(client, ml.info.run_id, "loss") == {1: 0.7, 2: 0.5}  # ours: all of it
    assert sorted(_history(client, ml.info.run_id, "wattwise/energy_j")) == [1, 2]
    assert ml.data.metrics["wattwise/total_energy_j"] == pytest.approx(run.result.energy_j)


def test_an_mlflow_failure_is_one_warning(tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    from wattwise.integrations.mlflow import wait_for_writes

    (tmp_path / "file").write_text("not a folder")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'file' / 'mlflow.db'}")
    monkeypatch.setenv("WATTWISE_MLFLOW", "1")
    def job() -> wattwise.Run:
        with wattwise.track("job", meters=[_meter()], interval_s=0.05) as run:
            time.sleep(0.5)  # the writer thread meets the broken store
            wait_for_writes(60)
            for step in range(5):
                run.log(step=step, loss=1.0)
        return run

    with pytest.warns(StoreWarning, match="logging to MLflow at .* failed") as said:
        run = job()
    assert len([w for w in said if "MLflow" in str(w.message)]) == 1
    assert run.result.status == "finished" and run.result.energy_j > 0
    assert open_store().get_run(run.id).status.value == "finished"


def test_mlflow_is_never_imported_for_users_who_do_not_use_it(tmp_path: Path) -> None:
    code = (
        "import sys, wattwise\n"
        "from wattwise.testing import FakeMeter\n"
        "with wattwise.track('x', meters=[FakeMeter({'cpu:0': 1.0})]) as run:\n"
        "    run.log(step=1, a=1.0)\n"
        "assert 'mlflow' not in sys.modules, 'mlflow was imported'\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr


def quadratic_in_a_worker(trial: Any) -> float:
    """An objective for worker processes (module level: they import it)."""
    x = float(trial.suggest_float("x", -1.0, 1.0))
    for step in range(2):
        _busy(0.1)
        trial.report(x * x + 1.0 / (step + 1), step)
    return x * x


def test_trials_in_worker_processes_are_nested_runs(tracking_uri: str) -> None:
    from mlflow.tracking import MlflowClient

    from wattwise.integrations.mlflow import wait_for_writes
    from wattwise.tuning import tune

    with mlflow.start_run(run_name="search") as active:
        result = tune(quadratic_in_a_worker, n_trials=3, seed=0, progress=False,
                      executor="processes", n_workers=2,
                      run_options={"meters": [_meter()], "interval_s": 0.05})  # fmt: skip
        wait_for_writes(60)
    client = MlflowClient(tracking_uri)
    runs = client.search_runs([active.info.experiment_id])
    nested = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == active.info.run_id]
    assert len(runs) == 4 and len(nested) == 3  # one parent, a nested run per trial
    ledger = open_store()
    assert {r.data.tags["wattwise.run_id"] for r in nested} == {t.run_id for t in result.trials}
    for r in nested:
        recorded = ledger.get_run(r.data.tags["wattwise.run_id"])
        assert recorded.pid != os.getpid()  # the trial ran, and was logged, in a worker
        assert r.info.status == "FINISHED" and r.data.tags["wattwise.kind"] == "trial"
        assert r.data.tags["wattwise.study_id"] == result.study_id
        assert r.data.metrics["wattwise/total_energy_j"] == pytest.approx(recorded.energy_j)
        assert r.data.metrics["wattwise/total_co2e_g"] == pytest.approx(recorded.co2e_g)
        assert recorded.energy_j > 0
        assert sorted(_history(client, r.info.run_id, "value")) == [0, 1]  # its reports
    study = client.get_run(active.info.run_id)
    assert study.data.tags["wattwise.kind"] == "study"
    assert study.data.tags["wattwise.run_id"] == result.study_id


def test_a_uri_with_a_password_is_never_handed_to_workers(tracking_uri: str,
                                                           monkeypatch: pytest.MonkeyPatch,
                                                           ) -> None:  # fmt: skip
    from wattwise.tracking import hand_off_observers

    with mlflow.start_run(), wattwise.track("study-like", meters=[_meter()]) as run:
        handed = hand_off_observers(run.id)["mlflow"]
        assert handed["tracking_uri"] == tracking_uri and handed["parent"] == run.id
        secret = "http://me:s3cret@mlflow.example:5000"
        from wattwise.integrations import mlflow as live

        monkeypatch.setattr(live._followers[run.id], "tracking_uri", secret)
        handed = hand_off_observers(run.id)["mlflow"]
        assert handed["tracking_uri"] is None and "s3cret" not in repr(handed)
        assert handed["run_id"] == mlflow.active_run().info.run_id


def test_live_and_exported_runs_carry_the_same_names(tracking_uri: str,
                                                      monkeypatch: pytest.MonkeyPatch,
                                                      ) -> None:  # fmt: skip
    from mlflow.tracking import MlflowClient

    from wattwise.integrations.mlflow import wait_for_writes
    from wattwise.report import log_to_mlflow

    monkeypatch.setenv("WATTWISE_MLFLOW", "1")
    with wattwise.track("same-names", meters=[_meter()], interval_s=0.05,
                        tags=["demo"]) as run:  # fmt: skip
        run.record_flops(1e9, steps=4, samples_per_step=32)
        for step in range(3):
            _busy(0.6)  # past MIN_SNAPSHOT_S... and the ledger's samples
            run.log(step=step, loss=1.0 / (step + 1))
    wait_for_writes(60)
    client = MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name("test_live_and_exported_runs_carry_the_same_names")
    (live,) = client.search_runs([experiment.experiment_id])
    client.delete_run(live.info.run_id)  # so the export makes a run of its own
    (exported,) = log_to_mlflow(open_store(), [open_store().get_run(run.id)],
                                tracking_uri=tracking_uri)  # fmt: skip
    assert exported.created and exported.mlflow_run_id != live.info.run_id
    again = client.get_run(exported.mlflow_run_id)
    assert set(again.data.metrics) == set(live.data.metrics)
    assert {"wattwise/total_energy_j", "wattwise/total_co2e_g", "wattwise/energy_j",
            "wattwise/flops_per_j", "loss"} <= set(live.data.metrics)  # fmt: skip
    assert set(again.data.tags) == set(live.data.tags)
    for key in ("wattwise/total_energy_j", "wattwise/total_co2e_g", "wattwise/duration_s",
                "wattwise/total_energy_j/cpu", "wattwise/flops"):  # same units, same figures
        assert again.data.metrics[key] == pytest.approx(live.data.metrics[key], rel=1e-6), key
    for key in ("wattwise.method", "wattwise.status", "wattwise.intensity_source",
                "wattwise.pue", "wattwise.tag.demo", "mlflow.runName"):
        assert again.data.tags[key] == live.data.tags[key], key
    # the energy so far at the steps: a fresh read live, the ledger's samples exported
    live_series = _history(client, live.info.run_id, "wattwise/energy_j")
    exported_series = _history(client, exported.mlflow_run_id, "wattwise/energy_j")
    assert sorted(live_series) == sorted(exported_series) == [0, 1, 2]
    # The live figure is a fresh read of the meters, which the ledger keeps as a sample; the
    # export interpolates the ledger's samples to the time the step was logged, just before
    # that read. So the exported figure lies within the sampling intervals on either side
    # of the live read's sample, however long a loaded machine took between the two.
    samples = open_store().samples(run.id)
    assert {comp for _, comp, _, _ in samples} == {"cpu"}  # one meter, one figure a sample
    so_far = [0.0] + [energy for _, _, _, energy in samples]  # from (0, 0), as exported
    for step, value in live_series.items():
        read = [i for i, energy in enumerate(so_far) if energy == pytest.approx(value)]
        assert read, f"step {step}: the live figure {value} J is no sample of the ledger's"
        low, high = so_far[max(0, read[0] - 1)], so_far[min(len(so_far) - 1, read[-1] + 1)]
        assert low <= exported_series[step] <= high, (step, low, high, value)


def test_a_tracking_server_that_never_answers_holds_neither_the_job_nor_its_exit(
    tmp_path: Path,
) -> None:
    """A server that takes a connection and never replies (MLflow would wait 600 s on the
    request): the job logs on while MLflow hangs, ends, and exits, its run in the ledger."""
    import socket

    go = tmp_path / "go"
    code = (
        "import pathlib, time, wattwise\n"
        "from wattwise.testing import FakeMeter\n"
        f"go = pathlib.Path({str(go)!r})\n"
        "with wattwise.track('hung', meters=[FakeMeter({'cpu:0': 5.0})],\n"
        "                    interval_s=0.05) as run:\n"
        "    step = 0\n"
        "    while not go.exists():  # until MLflow's request is stuck in the server\n"
        "        run.log(step=step, loss=1.0 / (step + 1))\n"
        "        step += 1\n"
        "        time.sleep(0.05)\n"
        "    for more in range(step, step + 5):  # and on, while it hangs\n"
        "        run.log(step=more, loss=0.1)\n"
        "print('done', run.result.status, run.result.energy_j > 0, flush=True)\n"
    )
    with socket.socket() as hung:
        hung.bind(("127.0.0.1", 0))
        hung.listen(16)
        hung.settimeout(240)
        env = {**os.environ, "WATTWISE_MLFLOW": "1", "WATTWISE_REGION": "FR",
               "MLFLOW_TRACKING_URI": f"http://127.0.0.1:{hung.getsockname()[1]}",
               "MLFLOW_HTTP_REQUEST_TIMEOUT": "600", "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0"}
        with subprocess.Popen([sys.executable, "-c", code], cwd=Path.cwd(), env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) as job:  # fmt: skip
            conn, _ = hung.accept()  # MLflow's first request: never answered
            with conn:
                go.write_text("go")
                out, err = job.communicate(timeout=300)  # MLflow alone would take 600 s
    assert job.returncode == 0, err
    assert out.split() == ["done", "finished", "True"]
    (row,) = [r for r in open_store().list_runs() if r.name == "hung"]  # the test's project
    assert row.status.value == "finished" and row.energy_j > 0

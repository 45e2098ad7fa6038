"""``wattwise tune --storage URL --resume``: a study kept in Optuna's storage goes on after
its process is killed (real SIGKILL / SIGINT of a subprocess this test started)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import optuna
import pytest

import wattwise
from study_support import ScriptedClock
from wattwise.cli import main
from wattwise.store import open_store
from wattwise.testing import FakeMeter
from wattwise.tuning import (
    ENERGY_ATTR,
    RUN_ATTR,
    STUDY_RUN_ATTR,
    STUDY_RUNS_ATTR,
    StudyRecord,
    TrialRecord,
)

OBJECTIVE = """
import os
import pathlib
import time


def objective(trial):
    x = trial.suggest_float("x", -2.0, 2.0)
    pathlib.Path(f"started-{trial.number}").touch()
    if str(trial.number) == os.environ.get("HOLD_TRIAL"):  # until the test's signal
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            time.sleep(0.01)
    for step in range(3):
        time.sleep(float(os.environ["STEP_S"]))
        trial.report((x - 1) ** 2, step)
    return (x - 1) ** 2
"""

N_TRIALS = 4


@pytest.fixture
def search(isolated_project: Path) -> Path:
    path = isolated_project / "search.py"
    path.write_text(OBJECTIVE)
    return path


def command(storage: str) -> list[str]:
    return [
        sys.executable, "-m", "wattwise", "tune", "search.py", "--storage", storage,
        "--study-name", "s", "--resume", "--n-trials", str(N_TRIALS), "--pruner", "none",
        "--seed", "0", "--no-progress", "--json",
    ]  # fmt: skip


def env(step_s: float, hold_trial: int) -> dict[str, str]:
    """The killed session's environment: trial ``hold_trial`` waits inside its objective
    for the test's signal, however late the loaded machine lets the test send it."""
    return {**os.environ, "STEP_S": str(step_s), "WATTWISE_INTERVAL_S": "0.1",
            "HOLD_TRIAL": str(hold_trial), "PYTHONFAULTHANDLER": "1"}  # fmt: skip


def wait_for(path: Path, proc: subprocess.Popen[str], timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, f"{path.name} never appeared"
        time.sleep(0.05)


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT], ids=["SIGKILL", "SIGINT"])
def test_an_interrupted_study_resumes_where_it_stopped(
    search: Path,
    isolated_project: Path,
    sig: signal.Signals,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    storage = f"sqlite:///{isolated_project / 'study.db'}"
    proc = subprocess.Popen(command(storage), env=env(0.15, hold_trial=1), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    try:
        wait_for(isolated_project / "started-1", proc)  # trial #1 is in its objective
        os.kill(proc.pid, sig)  # the process this test started, by its pid
        try:
            proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:  # where it is stuck: every thread's stack
            os.kill(proc.pid, signal.SIGABRT)  # faulthandler (PYTHONFAULTHANDLER) dumps them
            _, err = proc.communicate(timeout=60)
            pytest.fail(f"the session did not end within 60 s of {sig.name}:\n{err[-6000:]}")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == (-signal.SIGKILL if sig == signal.SIGKILL else 130)
    rdb = optuna.storages.RDBStorage(storage)  # opened once: each opening costs a second
    before = optuna.load_study(study_name="s", storage=rdb).get_trials()
    assert [t.state.name for t in before] == [
        "COMPLETE", "RUNNING" if sig == signal.SIGKILL else "FAIL",
    ]  # fmt: skip

    # the next session (in this process: the killed one is gone either way)
    monkeypatch.setenv("STEP_S", "0.01")
    capsys.readouterr()
    assert main(command(storage)[3:]) == 0
    data = json.loads(capsys.readouterr().out)
    kept = data["optuna"]
    assert kept["storage"] == storage and kept["session"] == 2
    assert kept["trials_before"] == 2 and kept["trials_in_study"] == N_TRIALS
    assert kept["orphans_failed"] == ([1] if sig == signal.SIGKILL else [])
    assert data["n_trials"]["total"] == N_TRIALS - 2 and data["stop_reason"] == "n_trials"

    study = optuna.load_study(study_name="s", storage=rdb)
    trials = study.get_trials()
    assert len(trials) == N_TRIALS  # the total trial count is respected
    assert [t.state.name for t in trials] == ["COMPLETE", "FAIL", "COMPLETE", "COMPLETE"]
    first, second = study.user_attrs[STUDY_RUNS_ATTR]
    assert kept["previous_study_run_ids"] == [first] and data["study_id"] == second
    assert [t.user_attrs[STUDY_RUN_ATTR] for t in trials] == [first] * 2 + [second] * 2
    for t in trials:
        assert t.user_attrs[ENERGY_ATTR if t.number != 1 or sig == signal.SIGINT else RUN_ATTR]

    store = open_store()
    store.reap()
    first_run, second_run = store.get_run(first), store.get_run(second)
    assert str(second_run.status) == "finished"
    assert str(first_run.status) == ("crashed" if sig == signal.SIGKILL else "failed")
    assert {r.id for r in store.list_runs(study_id=second)} == set(data["trial_run_ids"])
    killed = store.get_run(trials[1].user_attrs[RUN_ATTR])
    assert killed.study_id == first
    record = TrialRecord.from_record(killed.record)
    assert record is not None and record.state == "fail"
    assert record.crashed is (sig == signal.SIGKILL)
    summary = StudyRecord.from_record(second_run.record)
    assert summary is not None and summary.other["optuna"]["trials_before"] == 2

    # run again: every allowed trial has run, nothing more starts
    assert main(command(storage)[3:-1]) == 0  # without --json: the human summary
    out = capsys.readouterr().out
    assert "stopped: every trial ran. 0 trials" in out
    assert f"session 3, resumed after {N_TRIALS} earlier trials; {N_TRIALS} trials" in out
    assert len(optuna.load_study(study_name="s", storage=rdb).trials) == N_TRIALS


def test_the_energy_budget_counts_earlier_sessions(isolated_project: Path) -> None:
    storage = f"sqlite:///{isolated_project / 'study.db'}"
    clock = ScriptedClock()
    trial_j = 4 * 10.0  # four steps of one second at 10 W

    def objective(trial: Any) -> float:
        x = trial.suggest_float("x", 0.0, 1.0)
        for step in range(4):
            clock.t += 1.0
            trial.report(x, step)
        return x

    def session(**kwargs: Any) -> wattwise.tuning.TuneResult:
        options = {"meters": [FakeMeter({"gpu:0": 10.0}, clock=clock)], "interval_s": 0.05,
                   "emit_warnings": False}  # fmt: skip
        return wattwise.tune(
            objective, pruner=optuna.pruners.NopPruner(), seed=0, storage=storage,
            study_name="b", resume=True, run_options=options, **kwargs,
        )  # fmt: skip

    first = session(n_trials=2)
    assert first.spent.energy_j == pytest.approx(2 * trial_j)
    second = session(n_trials=10, budget_kwh=3.5 * trial_j / 3.6e6)
    # trial 3 runs whole; trial 4 would overshoot (a full trial costs 40 J, 20 J are left
    # of 3.5 trials' energy once the earlier session's two count): not started
    assert second.stop_reason == "energy_budget"
    assert [t.state for t in second.trials] == ["complete"]
    assert "would overshoot the energy budget: not started" in second.overshoot["not_started"]
    assert second.summary["optuna"]["energy_j_before"] == pytest.approx(2 * trial_j)
    assert len(optuna.load_study(study_name="b", storage=storage).trials) == 3


def test_storage_errors_are_one_line(search: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = ["tune", "search.py", "--n-trials", "1", "--no-progress"]
    for url in ("notaurl", "nosuchdb://h/x", "sqlite:///missing/folder/study.db"):
        assert main([*base, "--storage", url]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"wattwise: error: The study storage {url!r} cannot be opened")
        assert err.count("\n") == 1 and "sqlite:///study.db" in err
    assert main([*base, "--storage", "mysql://me:s3cret@db.example/optuna"]) == 2
    err = capsys.readouterr().err
    assert "s3cret" not in err and "mysql://me:***@db.example/optuna" in err
    assert main([*base, "--resume"]) == 2
    assert "Pass storage=" in capsys.readouterr().err
    os.environ["STEP_S"] = "0"
    try:
        assert main([*base, "--storage", "sqlite:///study.db", "--study-name", "t"]) == 0
        assert (
            "  Study kept in sqlite:///study.db: session 1, a new study; 1 trials in the study "
            "now.\n" in capsys.readouterr().out
        )
        assert main([*base, "--storage", "sqlite:///study.db", "--study-name", "t"]) == 2
        assert capsys.readouterr().err == (
            "wattwise: error: A study named 't' already exists in sqlite:///study.db. Pass "
            "--resume (resume=True) to continue it, or choose another --study-name.\n"
        )
        assert main([*base, "--storage", "sqlite:///study.db", "--study-name", "t",
                     "--resume", "--direction", "maximize"]) == 2  # fmt: skip
        assert "is a minimize study" in capsys.readouterr().err
    finally:
        del os.environ["STEP_S"]

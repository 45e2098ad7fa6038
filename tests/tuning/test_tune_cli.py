"""``wattwise tune FILE.py[:NAME]`` end to end, and its errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from wattwise.cli import main
from wattwise.store import open_store

OBJECTIVE = '''
import optuna

SPACE = {"x": (-2.0, 2.0)}

def objective(trial):
    x = trial.suggest_float("x", -2.0, 2.0)
    for step in range(5):
        print("noise on stdout")
        trial.report((x - 1) ** 2 + 1 / (step + 1), step)
        if trial.should_prune():
            raise optuna.TrialPruned()
    return (x - 1) ** 2
'''


@pytest.fixture
def objective_file(isolated_project: Path) -> Path:
    path = isolated_project / "search.py"
    path.write_text(OBJECTIVE)
    return path


def test_cli_runs_a_study_and_prints_json(objective_file: Path) -> None:
    env = {**os.environ, "WATTWISE_INTERVAL_S": "0.2"}
    done = subprocess.run(
        [sys.executable, "-m", "wattwise", "tune", f"{objective_file.name}:objective",
         "--n-trials", "4", "--seed", "1", "--budget-kwh", "1", "--json"],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)  # the objective's prints went to stderr
    assert "noise on stdout" in done.stderr
    assert data["n_trials"]["total"] == 4 and data["stop_reason"] == "n_trials"
    assert data["budget"]["energy_kwh"] == 1.0 and data["spent"]["energy_j"] > 0
    assert len(data["trials"]) == 4 and data["best_run_id"] in data["trial_run_ids"]
    assert set(data["pareto_run_ids"]) <= set(data["trial_run_ids"])
    runs = open_store().list_runs()
    assert [r.kind for r in runs].count("trial") == 4
    assert next(r for r in runs if r.kind == "study").id == data["study_id"]


def test_cli_human_summary(objective_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["tune", str(objective_file), "--n-trials", "3", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "Study 'tune-objective'" in out and "stopped: every trial ran" in out
    assert "Pareto front" in out and "Pruning avoided" in out


def test_cli_objective_not_found_is_one_line(
    objective_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["tune", f"{objective_file.name}:nope", "--n-trials", "2"]) == 1
    err = capsys.readouterr().err
    assert err == (
        "wattwise: error: No function 'nope' in 'search.py'. Functions defined there: "
        "objective. Name the objective with search.py:NAME.\n"
    )
    assert main(["tune", "missing.py", "--n-trials", "2"]) == 1
    assert "No objective file 'missing.py'" in capsys.readouterr().err


def test_cli_bad_budget_is_a_parameter_error(
    objective_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["tune", str(objective_file), "--budget-kwh", "-1"]) == 2
    assert capsys.readouterr().err == (
        "wattwise: error: The 'budget_kwh' parameter of wattwise.tune must be a float in the "
        "range (0, inf). Got -1.0 instead.\n"
    )
    assert main(["tune", str(objective_file)]) == 2
    assert "needs a limit" in capsys.readouterr().err

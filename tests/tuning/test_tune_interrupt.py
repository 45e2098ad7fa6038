"""``wattwise tune`` stopped by Ctrl-C (SIGINT) or SIGTERM: no further trial, the running
trial's run ends failed with its energy, the study run ends with the stop reason, and the
summary (spend, best, front) is printed before exit 130 / 143. Real subprocesses and
signals, sent only to the processes this test started (by pid or by the group it made)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from wattwise.store import RunStatus, open_store
from wattwise.tuning import StudyRecord, TrialRecord

#: Trial #0 ends at once; trial #1 reports until it is stopped, and says (started-1) once
#: it has spent some energy.
OBJECTIVE = """
import pathlib
import time


def objective(trial):
    x = trial.suggest_float("x", -2.0, 2.0)
    step = 0
    while True:
        trial.report((x - 1) ** 2, step)
        if trial.number == 0 and step == 2:
            return (x - 1) ** 2
        if trial.energy_j > 0:
            pathlib.Path(f"started-{trial.number}").touch()
        step += 1
        time.sleep(0.05)
"""


def wait_for(path: Path, proc: subprocess.Popen[str], timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, f"{path.name} never appeared"
        time.sleep(0.05)


CASES = [
    ("inline", signal.SIGINT, "interrupted"),
    ("inline", signal.SIGTERM, "terminated"),
    ("processes", signal.SIGINT, "interrupted"),
    ("processes", signal.SIGTERM, "terminated"),
]


@pytest.mark.parametrize(("executor", "sig", "reason"), CASES,
                         ids=[f"{e}-{s.name}" for e, s, _ in CASES])  # fmt: skip
def test_a_signal_stops_the_study_with_its_summary(
    isolated_project: Path, executor: str, sig: signal.Signals, reason: str
) -> None:
    (isolated_project / "search.py").write_text(OBJECTIVE)
    workers = ["--n-workers", "1"] if executor == "processes" else []
    argv = [
        sys.executable, "-m", "wattwise", "tune", "search.py", "--n-trials", "5",
        "--pruner", "none", "--seed", "0", "--executor", executor, *workers, "--no-progress",
    ]  # fmt: skip
    # a session of its own: SIGINT goes to its whole group, as Ctrl-C at a terminal would
    proc = subprocess.Popen(
        argv, env={**os.environ, "WATTWISE_INTERVAL_S": "0.1"}, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
    )  # fmt: skip
    try:
        wait_for(isolated_project / "started-1", proc)
        if sig == signal.SIGINT:
            os.killpg(proc.pid, sig)  # the group this test made (the workers left it)
        else:
            os.kill(proc.pid, sig)  # as `timeout` does: the driver alone
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 128 + sig, err
    assert f"stopped: {reason}" in out and "Spent " in out
    assert "Best: trial #0" in out and "Pareto front" in out
    assert err.strip().splitlines()[-1] == f"wattwise: {reason}"
    assert "Traceback" not in err

    store = open_store()
    store.reap()
    runs = store.list_runs()
    assert all(r.status is not RunStatus.RUNNING for r in runs)
    study = next(r for r in runs if r.kind == "study")
    assert study.status is RunStatus.FAILED and study.record["error"] == reason
    summary = StudyRecord.from_record(study.record)
    assert summary is not None and summary.stop_reason == reason
    trials = sorted((r for r in runs if r.kind == "trial"), key=lambda r: r.name)
    assert len(trials) == 2  # no trial started after the signal
    assert trials[0].status is RunStatus.FINISHED
    stopped = trials[1]
    # ended honestly by itself, not killed and marked crashed: failed, with its energy
    assert stopped.status is RunStatus.FAILED and stopped.energy_j > 0
    assert stopped.record["error"].startswith(("KeyboardInterrupt", "Terminated"))
    record = TrialRecord.from_record(stopped.record)
    assert record is not None and record.state == "fail" and not record.crashed
    assert summary.n_trials["fail"] == 1 and summary.n_trials["complete"] == 1


def test_json_output_on_sigterm(isolated_project: Path) -> None:
    (isolated_project / "search.py").write_text(OBJECTIVE)
    proc = subprocess.Popen(
        [sys.executable, "-m", "wattwise", "tune", "search.py", "--n-trials", "5",
         "--pruner", "none", "--json"],
        env={**os.environ, "WATTWISE_INTERVAL_S": "0.1"}, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
    )  # fmt: skip
    try:
        wait_for(isolated_project / "started-1", proc)
        os.kill(proc.pid, signal.SIGTERM)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 143, err
    data = json.loads(out)
    assert data["stop_reason"] == "terminated" and data["n_trials"]["total"] == 2
    assert data["best"]["number"] == 0 and data["spent"]["energy_j"] > 0
    assert [t["state"] for t in data["trials"]] == ["complete", "fail"]

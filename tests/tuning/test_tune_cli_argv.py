"""``wattwise tune FILE.py``: the file sees ``sys.argv == [FILE.py]``, as under ``python``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

#: A file that parses its own command line at import, as training scripts do; the objective
#: writes what it sees in sys.argv (worker processes too) to argv.jsonl.
SCRIPT = '''
import argparse, json, multiprocessing, sys

parser = argparse.ArgumentParser()
parser.add_argument("--lr", type=float, default=0.1)
ARGS = parser.parse_args()
SEEN_AT_IMPORT = list(sys.argv)

def objective(trial):
    x = trial.suggest_float("x", -1.0, 1.0)
    with open("argv.jsonl", "a") as out:
        out.write(json.dumps({"import": SEEN_AT_IMPORT, "objective": list(sys.argv),
                              "worker": multiprocessing.parent_process() is not None})
                  + "\\n")
    return x * x + ARGS.lr
'''


@pytest.mark.parametrize("executor", ["inline", "processes"])
def test_file_sees_its_own_argv(isolated_project: Path, executor: str) -> None:
    (isolated_project / "train.py").write_text(SCRIPT)
    workers = ["--n-workers", "1"] if executor == "processes" else []
    done = subprocess.run(
        [sys.executable, "-m", "wattwise", "tune", "train.py", "--n-trials", "2",
         "--executor", executor, *workers, "--no-progress", "--json"],
        capture_output=True, text=True, env={**os.environ, "WATTWISE_INTERVAL_S": "0.2"},
        cwd=isolated_project, timeout=180,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "usage:" not in done.stderr
    assert json.loads(done.stdout)["n_trials"]["complete"] == 2
    lines = (isolated_project / "argv.jsonl").read_text().splitlines()
    seen = [json.loads(line) for line in lines]
    assert len(seen) == 2
    assert all(s["import"] == ["train.py"] and s["objective"] == ["train.py"] for s in seen)
    # with processes, the trials ran in a worker process, which saw the same
    assert all(s["worker"] is (executor == "processes") for s in seen)


def test_argv_is_restored_after_the_study(isolated_project: Path) -> None:
    from wattwise.cli import main

    (isolated_project / "train.py").write_text(SCRIPT)
    before = list(sys.argv)
    assert main(["tune", "train.py", "--n-trials", "1", "--no-progress"]) == 0
    assert sys.argv == before


def test_help_says_what_the_file_sees(capsys: pytest.CaptureFixture[str]) -> None:
    from wattwise.cli import main

    assert main(["tune", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "sys.argv is [FILE.py]" in text and "exit code is 130 (SIGINT) or 143" in text

"""README.md's promises, run as a new user would: outside the clone, from a fresh venv.

The quick start's command lines are read from README.md itself (the console block after
its ``quick-start`` marker) and run in one bash session in a temporary project folder that
holds only a ``train.py``: a venv made with ``python3 -m venv``, wattwise installed from this
clone with pip (a copy, not editable), then ``wattwise run``, ``runs``, ``show`` and
``footprint``. The smallest ``wattwise tune`` file is read from README.md too, and run with
the command written in its first line.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")

TRAIN = """\
import argparse

parser = argparse.ArgumentParser()
parser.add_argument("--lr", type=float, required=True)
lr = parser.parse_args().lr
weight = 0.0
for step in range(2_000_000):
    weight -= lr * (weight - 1.0) * 1e-6
print(f"trained: lr={lr} weight={weight:.4f}")
"""


def _block_after(marker: str, language: str) -> str:
    """The fenced block of ``language`` right after the HTML comment naming ``marker``."""
    found = re.search(
        rf"<!-- {marker}:[^>]*-->\s*```{language}\n(.*?)\n```", README, flags=re.DOTALL
    )
    assert found is not None, f"README.md has no {language} block after <!-- {marker}: -->"
    return found[1]


def _clean_env(project: Path) -> dict[str, str]:
    """This environment without wattwise's variables or a venv; the ledger kept in ``project``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WATTWISE_")}
    env.pop("VIRTUAL_ENV", None)
    venv_bin = str(Path(sys.prefix) / "bin")
    env["PATH"] = os.pathsep.join(
        p for p in env.get("PATH", "").split(os.pathsep) if p and p != venv_bin
    )
    # /tmp may hold a .wattwise/ of its own: the project folder is where the walk stops
    env["WATTWISE_CEILING_DIRECTORIES"] = str(project)
    # a spool (a ledger that refused a write) stays in this test's folder; pip keeps the
    # user's configuration and cache, as a user's pip does
    env["XDG_STATE_HOME"] = str(project / ".state")
    return env


def _commands(block: str) -> list[str]:
    """The ``$ `` lines of a console block, without their ``# comments``."""
    lines = []
    for line in block.splitlines():
        if line.startswith("$ "):
            lines.append(line[2:].split("  #", 1)[0].strip())
    return lines


@pytest.mark.slow
def test_quick_start_in_a_project_outside_the_clone(tmp_path: Path) -> None:
    commands = _commands(_block_after("quick-start", "console"))
    assert commands[0] == "cd my-project"
    project = tmp_path / "my-project"
    project.mkdir()
    (project / "train.py").write_text(TRAIN, encoding="utf-8")

    script = [
        "set -euo pipefail",
        # the README's run id is an example: `show` gets the run this session recorded
        "newest() { wattwise runs --json --limit 1 | "
        "python -c 'import json, sys; print(json.load(sys.stdin)[0][\"id\"][:8])'; }",
    ]
    for command in commands:
        command = command.replace("/path/to/wattwise", shlex.quote(str(ROOT)))
        command = re.sub(r"(wattwise show) 3f2a\b", r'\1 "$(newest)"', command)
        script += [f"echo {shlex.quote('>>> ' + command)}", command]
    done = subprocess.run(
        ["bash", "-c", "\n".join(script)],
        cwd=tmp_path,
        env=_clean_env(project),
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-4000:]

    python = project / ".venv" / "bin" / "python"
    where = subprocess.run(
        [str(python), "-c", "import wattwise; print(wattwise.__file__)"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    # a copy in the project's venv, not the clone's source
    assert Path(where).is_relative_to(project / ".venv"), where
    assert (project / ".wattwise" / "ledger.db").is_file()

    runs = subprocess.run(
        [str(project / ".venv" / "bin" / "wattwise"), "runs", "--json"],
        cwd=project, env=_clean_env(project), capture_output=True, text=True, check=True,
    )  # fmt: skip
    (run,) = json.loads(runs.stdout)
    assert run["status"] == "finished"
    assert run["exit_code"] == 0
    assert run["energy_j"] > 0
    assert run["co2e_g"] > 0
    assert "trained: lr=0.1" in output
    assert ">>> wattwise show" in output
    assert run["id"][:8] in output
    assert "all runs" in output  # footprint's total line


@pytest.mark.slow
def test_the_smallest_tune_file_runs_as_written(tmp_path: Path) -> None:
    pytest.importorskip("optuna", reason="wattwise tune needs the optuna extra")
    source = _block_after("tune-file", "python")
    first = source.splitlines()[0]
    found = re.match(r"# (\S+\.py): wattwise (tune .+)$", first)
    assert found is not None, f"the tune file's first line gives its command: {first!r}"
    (tmp_path / found[1]).write_text(source + "\n", encoding="utf-8")
    env = _clean_env(tmp_path)
    done = subprocess.run(
        [sys.executable, "-m", "wattwise", *shlex.split(found[2]), "--json"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-4000:]
    result = json.loads(done.stdout)
    summary = result.get("summary", result)
    counts = summary["n_trials"]
    assert counts["complete"] >= 1
    assert summary["best"]["params"].keys() == {"x"}
    assert summary["best"]["value"] >= 0

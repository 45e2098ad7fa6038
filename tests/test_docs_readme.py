"""README.md's promises, run as a new user would: outside the clone, from a fresh venv.

Everything is read from README.md itself, so the README cannot drift from what works:

* the quick start (the console block after its ``quick-start`` marker) runs in one bash
  session in a temporary project folder that holds only a ``train.py`` under git: a venv made
  with ``python3 -m venv``, wattwise installed from this clone with pip (a copy, not
  editable, with the extra the line names), then ``wattwise run``, ``runs``, ``show`` and
  ``footprint``;
* the smallest ``wattwise tune`` file runs in that project with the command written in its
  first line, on the project's own ``wattwise``;
* the "Then" block (after its ``then`` marker) runs there too: tune, reproduce, report, sci,
  export and doctor;
* the Python block (after its ``python-api`` marker) runs on the project's interpreter, with
  an ``evaluate()`` of this test's own in front (the README leaves it to the reader);
* the wheel route of "Put wattwise into your project": ``pip wheel`` writes the file the
  README names, with the shipped data inside, and installed alone from it, wattwise finds
  that data (``wattwise doctor``).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")

TRAIN = """\
import argparse

import wattwise

parser = argparse.ArgumentParser()
parser.add_argument("--lr", type=float, required=True)
lr = parser.parse_args().lr
weight = 0.0
for step in range(2_000_000):
    weight -= lr * (weight - 1.0) * 1e-6
wattwise.log(step=0, weight=weight)
print(f"trained: lr={lr} weight={weight:.4f}")
"""

#: The README's Python block calls ``evaluate()`` and leaves it to the reader: this is ours.
EVALUATE = """\
def evaluate():
    return sum(i * i for i in range(100_000)) % 97 / 97
"""

GITIGNORE = ".venv/\n.wattwise/\n.state/\nreport.html\n"


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
    # the project's own commit (reproduce needs one), by a name of its own
    for who in ("AUTHOR", "COMMITTER"):
        env[f"GIT_{who}_NAME"] = "README walker"
        env[f"GIT_{who}_EMAIL"] = "readme@example.invalid"
    return env


def _commands(block: str) -> list[str]:
    """The ``$ `` lines of a console block, without their ``# comments``."""
    lines = []
    for line in block.splitlines():
        if line.startswith("$ "):
            lines.append(line[2:].split("  #", 1)[0].strip())
    return lines


def _bash(lines: list[str], cwd: Path, env: dict[str, str], timeout: float) -> str:
    """Run ``lines`` in one ``set -euo pipefail`` bash session; its output, asserting exit 0."""
    done = subprocess.run(
        ["bash", "-c", "\n".join(["set -euo pipefail", *lines])],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-4000:]
    return output


def _echoed(command: str) -> list[str]:
    """``command`` preceded by an echo of it, so that a failure's output says which line."""
    return [f"echo {shlex.quote('>>> ' + command)}", command]


@dataclass(frozen=True)
class Project:
    """The quick start's project: its folder, its venv's bin, what the quick start printed."""

    path: Path
    bin: Path
    env: dict[str, str]
    output: str
    runs: list[dict[str, object]]

    @property
    def train_run(self) -> str:
        """The id of the quick start's ``wattwise run`` (the README's ``3f2a``)."""
        (run,) = [r for r in self.runs if r["name"] == "train.py"]
        return str(run["id"])

    def wattwise(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        """The project venv's ``wattwise ARGS``, in the project, exit 0 asserted."""
        done = subprocess.run(
            [str(self.bin / "wattwise"), *args], cwd=self.path, env=self.env,
            capture_output=True, text=True, timeout=timeout, check=False,
        )  # fmt: skip
        assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
        return done

    def write_tune_file(self) -> tuple[str, str]:
        """The README's smallest tune file, written under the name its first line gives.

        Returns:
            The file's name and the command line its first line gives (``tune ...``).
        """
        source = _block_after("tune-file", "python")
        first = source.splitlines()[0]
        found = re.match(r"# (\S+\.py): wattwise (tune .+)$", first)
        assert found is not None, f"the tune file's first line gives its command: {first!r}"
        (self.path / found[1]).write_text(source + "\n", encoding="utf-8")
        return found[1], found[2]


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Project:
    """README's quick start, run line by line in a fresh project outside the clone."""
    commands = _commands(_block_after("quick-start", "console"))
    assert commands[0] == "cd my-project"
    base = tmp_path_factory.mktemp("readme")
    path = base / "my-project"
    path.mkdir()
    (path / "train.py").write_text(TRAIN, encoding="utf-8")
    (path / ".gitignore").write_text(GITIGNORE, encoding="utf-8")
    env = _clean_env(path)
    # a project under git, as most are (the "Then" block's reproduce needs a commit)
    _bash(["git init -q", "git add train.py .gitignore", "git commit -q -m 'train.py'"],
          path, env, timeout=60)  # fmt: skip

    script = [
        # the README's run id is an example: `show` gets the run this session recorded
        "newest() { wattwise runs --json --limit 1 | "
        "python -c 'import json, sys; print(json.load(sys.stdin)[0][\"id\"][:8])'; }",
    ]
    for command in commands:
        command = command.replace("/path/to/wattwise", shlex.quote(str(ROOT)))
        command = re.sub(r"(wattwise show) 3f2a\b", r'\1 "$(newest)"', command)
        script += _echoed(command)
    output = _bash(script, base, env, timeout=900)

    venv_bin = path / ".venv" / "bin"
    runs = subprocess.run(
        [str(venv_bin / "wattwise"), "runs", "--json", "--all"],
        cwd=path, env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    return Project(path, venv_bin, env, output, json.loads(runs.stdout))


@pytest.mark.slow
def test_quick_start_in_a_project_outside_the_clone(project: Project) -> None:
    where = subprocess.run(
        [str(project.bin / "python"), "-c", "import wattwise; print(wattwise.__file__)"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    # a copy in the project's venv, not the clone's source
    assert Path(where).is_relative_to(project.path / ".venv"), where
    assert (project.path / ".wattwise" / "ledger.db").is_file()

    (run,) = project.runs
    assert run["name"] == "train.py"  # named after the script, not "python"
    assert run["status"] == "finished"
    assert run["exit_code"] == 0
    assert isinstance(run["energy_j"], float) and run["energy_j"] > 0
    assert isinstance(run["co2e_g"], float) and run["co2e_g"] > 0
    assert "trained: lr=0.1" in project.output
    assert ">>> wattwise show" in project.output
    assert project.train_run[:8] in project.output
    assert "all runs" in project.output  # footprint's total line


@pytest.mark.slow
def test_the_smallest_tune_file_runs_as_written_in_the_project(project: Project) -> None:
    name, command = project.write_tune_file()
    done = project.wattwise(*shlex.split(command), "--json", timeout=600)
    result = json.loads(done.stdout)
    summary = result.get("summary", result)
    counts = summary["n_trials"]
    assert counts["complete"] >= 1
    assert summary["best"]["params"].keys() == {"x"}
    assert summary["best"]["value"] >= 0
    # the trials are in the project's ledger, each a run of its own, folded into the study's
    # line by `wattwise runs` and listed under it with --trials
    listed = json.loads(project.wattwise("runs", "--json", "--all", "--trials").stdout)
    [study] = [r for r in listed if r["kind"] == "study"]
    assert study["trials"] >= counts["complete"]
    assert sum(1 for r in study["trial_runs"] if r["kind"] == "trial") == study["trials"]
    assert (project.path / name).is_file()


@pytest.mark.slow
def test_the_then_block_runs_in_the_project(project: Project) -> None:
    project.write_tune_file()  # the block's `wattwise tune search.py` is the file below it
    commands = _commands(_block_after("then", "console"))
    verbs = [shlex.split(c)[1] for c in commands]
    assert {"tune", "reproduce", "report", "sci", "export", "doctor"} <= set(verbs), verbs
    for command in commands:  # an energy budget alone lets the smallest file run for hours
        if shlex.split(command)[1] == "tune":
            assert "--n-trials" in command or "--timeout-s" in command, command
    script = []
    for command in commands:
        command = re.sub(r"\b3f2a\b", project.train_run[:8], command)
        script += _echoed(command)
    env = dict(project.env, PATH=f"{project.bin}{os.pathsep}{project.env['PATH']}")
    output = _bash(script, project.path, env, timeout=900)

    assert "Study 'tune-" in output  # tune's summary
    assert f"reproduces run {project.train_run[:8]}" in output
    assert "Reproduced:" in output
    report = (project.path / "report.html").read_text(encoding="utf-8")
    assert report.lstrip().lower().startswith("<!doctype html")
    assert "train.py" in report
    assert re.search(r"SCI = \(E x I \+ M\) / R = [0-9.]+ \S+ per training run", output)
    assert "co2_eq_emissions:" in output  # the model card's YAML
    assert "Meters:" in output and "Shipped data" in output  # doctor


@pytest.mark.slow
def test_the_python_block_runs_in_the_project(project: Project) -> None:
    block = _block_after("python-api", "python")
    script = project.path / "api_example.py"
    script.write_text(EVALUATE + block + "\n", encoding="utf-8")
    done = subprocess.run(
        [str(project.bin / "python"), script.name], cwd=project.path, env=project.env,
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-4000:]
    energy_j, co2e_g, duration_s = (float(x) for x in done.stdout.split())
    assert energy_j > 0 and co2e_g > 0 and duration_s > 0

    listed = json.loads(project.wattwise("runs", "--json", "--all").stdout)
    (run,) = [r for r in listed if r["name"] == "cnn-digits"]
    assert run["energy_j"] == pytest.approx(energy_j)
    shown = json.loads(project.wattwise("show", str(run["id"]), "--json").stdout)
    assert [p["step"] for p in shown["metrics"]["val_acc"]] == list(range(20))


@pytest.mark.slow
def test_the_wheel_carries_the_shipped_data(project: Project, tmp_path: Path) -> None:
    found = re.search(r"`(pip wheel [^`]+)`\s+writes `([^`]+\.whl)`", README)
    assert found is not None, "README.md names the wheel `pip wheel ...` writes"
    command = found[1].replace("/path/to/wattwise", shlex.quote(str(ROOT)))
    env = dict(project.env, PATH=f"{project.bin}{os.pathsep}{project.env['PATH']}")
    _bash(_echoed(command), tmp_path, env, timeout=600)
    wheel = tmp_path / found[2]
    assert wheel.is_file(), sorted(p.name for p in tmp_path.rglob("*"))

    data = ROOT / "src" / "wattwise" / "data"
    shipped = {
        "wattwise/data/" + p.relative_to(data).as_posix()
        for p in data.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    missing = shipped - names
    assert "wattwise/data/PROVENANCE.md" in shipped
    assert not missing, sorted(missing)
    bytecode = sorted(n for n in names if n.endswith(".pyc") or "__pycache__" in n)
    assert not bytecode, bytecode  # a dev checkout's caches stay out of the wheel

    # installed alone (no clone, no other copy of wattwise on the path), it finds its data
    # and names each set's vintage; its one dependency, psutil, comes from the project's venv
    target = tmp_path / "installed"
    _bash(_echoed(f"pip install -q --no-deps --target {shlex.quote(str(target))} "
                  f"{shlex.quote(str(wheel))}"), tmp_path, env, timeout=600)  # fmt: skip
    where = tmp_path / "elsewhere"
    where.mkdir()
    doctor = subprocess.run(
        [str(project.bin / "python"), "-c",
         "import sys, wattwise.cli; print(wattwise.__file__); sys.argv[0] = 'wattwise'; "
         "sys.exit(wattwise.cli.main(['doctor']))"],
        cwd=where, env=dict(_clean_env(where), PYTHONPATH=str(target)),
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert doctor.returncode == 0, doctor.stderr[-4000:]
    assert Path(doctor.stdout.splitlines()[0]).is_relative_to(target), doctor.stdout[:500]
    assert "grid/ember_average_intensities.json" in doctor.stdout

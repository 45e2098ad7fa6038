"""A command run is named after the script or module it runs, not after ``python``."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from cli_support import cli

from wattwise.store import open_store
from wattwise.tracking import Run


@pytest.mark.parametrize(
    ("argv", "name"),
    [
        (["python", "train.py", "--lr", "0.1"], "train.py"),
        (["/usr/bin/python3.12", "-u", "src/train.py"], "train.py"),
        (["python3", "-W", "error", "-X", "dev", "train.py"], "train.py"),
        (["python", "-m", "pkg.train", "--epochs", "3"], "pkg.train"),
        (["python", "-um", "pkg.train"], "pkg.train"),
        (["python", "-mpkg.train"], "pkg.train"),
        (["python", "-c", "print(1)"], "python -c"),
        (["python"], "python"),
        (["torchrun", "--nproc-per-node", "2", "train.py", "--epochs", "3"], "train.py"),
        (["torchrun", "--standalone", "--nproc_per_node=2", "-m", "pkg.train"], "pkg.train"),
        (["python", "-m", "torch.distributed.run", "--nnodes", "1", "train.py"], "train.py"),
        (["accelerate", "launch", "--num_processes", "2", "train.py"], "train.py"),
        (["deepspeed", "--num_gpus", "2", "train.py", "--deepspeed", "ds.json"], "train.py"),
        (["srun", "-n", "4", "python", "-m", "pkg.train"], "pkg.train"),
        (["env", "CUDA_VISIBLE_DEVICES=0", "-u", "HOME", "python", "train.py"], "train.py"),
        (["nice", "-n", "5", "nohup", "python", "train.py"], "train.py"),
        (["uv", "run", "--with", "numpy", "python", "train.py"], "train.py"),
        (["uv", "run", "train.py"], "train.py"),
        (["poetry", "run", "pytest", "-x"], "pytest"),
        (["bash", "scripts/train.sh"], "train.sh"),
        (["bash", "-lc", "python train.py"], "bash -c"),
        (["./train.py", "--lr", "1"], "train.py"),
        (["jupyter", "nbconvert", "--to", "notebook", "--execute", "nb/a.ipynb"], "a.ipynb"),
        (["papermill", "in.ipynb", "out.ipynb", "-p", "lr", "0.1"], "in.ipynb"),
        (["make", "train"], "make"),
    ],
)
def test_the_default_name_is_the_script_or_module(argv: list[str], name: str) -> None:
    assert Run(command=argv, kind="command").name == name


def test_name_wins_and_a_run_without_a_command_is_run() -> None:
    assert Run("mine", command=["python", "train.py"], kind="command").name == "mine"
    assert Run().name == "run"


def test_wattwise_run_names_the_script_and_the_module(tmp_path: Path) -> None:
    (Path("train.py")).write_text("print('trained')\n")
    pkg = Path("pkg")
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "train.py").write_text("print('module trained')\n")
    assert cli("run", "-q", "--", sys.executable, "train.py").out == "trained\n"
    assert cli("run", "-q", "--", sys.executable, "-m", "pkg.train").out == "module trained\n"
    assert cli("run", "-q", "--name", "chosen", "--", sys.executable, "train.py").code == 0
    names = [r.name for r in open_store().list_runs()]
    assert sorted(names) == ["chosen", "pkg.train", "train.py"]
    listing = cli("runs").out
    assert "train.py" in listing and "pkg.train" in listing and " python " not in listing

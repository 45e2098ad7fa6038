from __future__ import annotations

import os
import random
import subprocess
import sys
from collections.abc import Iterator

import numpy as np
import pytest

import wattwise
from wattwise.environment import forget_seeds as forget
from wattwise.exceptions import InvalidParameterError
from wattwise.repro import determinism_flags, last_seeds, seed_everything
from wattwise.store import open_store
from wattwise.testing import FakeMeter


def fake() -> list[FakeMeter]:
    return [FakeMeter({"cpu:0": 20.0})]


@pytest.fixture(autouse=True)
def forget_seeds() -> Iterator[None]:
    """Runs started by later tests must not record this test's seeds."""
    yield
    forget()


def test_seed_everything_makes_random_and_numpy_repeat() -> None:
    report = seed_everything(123)
    first = (random.random(), np.random.rand(3).tolist())
    seed_everything(123)
    assert (random.random(), np.random.rand(3).tolist()) == first
    assert report["seed"] == 123 and {"random", "numpy"} <= set(report["seeded"])
    assert report["deterministic"] is False
    latest = last_seeds()
    assert latest is not None and latest["seed"] == 123 and latest["at"] >= report["at"]


@pytest.mark.parametrize("bad", [-1, 2**32, 1.5, "7", True, None])
def test_bad_seeds_are_refused(bad: object) -> None:
    with pytest.raises(InvalidParameterError, match=r"'seed' parameter .* Got"):
        seed_everything(bad)  # type: ignore[arg-type]


def test_seeds_go_into_the_current_run() -> None:
    with wattwise.track("seeded", meters=fake()) as run:
        wattwise.seed_everything(7)
    record = open_store().get_run(run.id).record
    assert record["seeds"]["seed"] == 7
    assert record["determinism_flags"] == record["seeds"]["determinism_flags"]


def test_seeds_set_before_a_run_are_recorded_by_it() -> None:
    seed_everything(11)
    with wattwise.track("later", meters=fake()) as run:
        pass
    assert open_store().get_run(run.id).record["seeds"]["seed"] == 11


def test_command_child_records_seeds_and_data_into_its_run(tmp_path: object) -> None:
    code = (
        "import numpy as np, wattwise\n"
        "from wattwise.repro import use_data\n"
        "wattwise.seed_everything(5)\n"
        "use_data(np.arange(10), name='ids')\n"
        "use_data(b'hello', name='greeting')\n"
    )
    out = subprocess.run(
        [sys.executable, "-m", "wattwise", "run", "-q", "--", sys.executable, "-c", code],
        capture_output=True, text=True, timeout=120, env=os.environ.copy(),
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    record = open_store().list_runs()[-1].record
    assert record["seeds"]["seed"] == 5 and "numpy" in record["seeds"]["seeded"]
    assert [d["name"] for d in record["data"]] == ["ids", "greeting"]
    assert record["data"][0]["shape"] == [10] and record["data"][0]["n_examples"] == 10


@pytest.fixture
def torch_state() -> Iterator[object]:
    torch = pytest.importorskip("torch")
    saved = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
        torch.backends.cudnn.deterministic,
        torch.backends.cudnn.benchmark,
        os.environ.get("CUBLAS_WORKSPACE_CONFIG"),
    )
    yield torch
    torch.use_deterministic_algorithms(saved[0], warn_only=saved[1])
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = saved[2], saved[3]
    if saved[4] is None:
        os.environ.pop("CUBLAS_WORKSPACE_CONFIG", None)
    else:
        os.environ["CUBLAS_WORKSPACE_CONFIG"] = saved[4]


@pytest.mark.torch
def test_torch_is_seeded_and_determinism_is_opt_in(torch_state: object) -> None:
    torch = torch_state
    report = seed_everything(9)
    a = torch.rand(3)  # type: ignore[attr-defined]
    assert "torch" in report["seeded"]
    assert report["determinism_flags"]["torch.use_deterministic_algorithms"] is False
    report = seed_everything(9, deterministic=True)
    assert torch.equal(torch.rand(3), a)  # type: ignore[attr-defined]
    flags = report["determinism_flags"]
    assert flags["torch.use_deterministic_algorithms"] is True
    assert flags["torch.deterministic_warn_only"] is True
    assert flags["torch.backends.cudnn.deterministic"] is True
    assert flags["torch.backends.cudnn.benchmark"] is False
    assert flags["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
    assert determinism_flags() == flags

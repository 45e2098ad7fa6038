from __future__ import annotations

import os
from pathlib import Path

import pytest

# A throwaway PostgreSQL cluster (session) and a fresh database per test, for any test that
# asks for them (they skip, saying why, where PostgreSQL is not installed).
from pg_support import pg_cluster, pg_url  # noqa: F401

# `make test` runs the suite on pytest-xdist workers with --dist loadgroup: each test file is
# one group (it stays on one worker, in order, so a module-scoped fixture is made once), and
# the tests that start a server of a kind that must not run twice at once on one machine share
# a group: one SLURM cluster (tests/slurm/) and one local Ray cluster (marker `ray`) at a time.
SLURM_TESTS = "tests/slurm/"
_REPO = Path(__file__).resolve().parent.parent


def xdist_group_of(item: pytest.Item) -> str:
    """The xdist group of a test: ``ray``, ``slurm``, else its file's path."""
    if item.get_closest_marker("ray") is not None:
        return "ray"
    try:
        name = item.path.resolve().relative_to(_REPO).as_posix()
    except ValueError:  # a test outside this repository (pytest given another path)
        return item.path.as_posix()
    return "slurm" if name.startswith(SLURM_TESTS) else name


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        item.add_marker(pytest.mark.xdist_group(xdist_group_of(item)))


@pytest.fixture(autouse=True)
def isolated_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test runs in its own empty project with a known region and a clean environment."""
    for var in list(os.environ):
        # A suite run inside a SLURM job or a torchrun worker must not make every run a job
        # (docs/explanation/jobs.md): tests that want a job set these themselves.
        if var.startswith("WATTWISE_") or var in ("SLURM_JOB_ID", "SLURM_JOBID",
                                                  "TORCHELASTIC_RUN_ID"):  # fmt: skip
            monkeypatch.delenv(var)
    project = tmp_path / "project"
    (project / ".wattwise").mkdir(parents=True)
    monkeypatch.chdir(project)
    monkeypatch.setenv("WATTWISE_REGION", "FR")
    # A .wattwise/ or .git above the test's folder (in /tmp, say) must not become its project.
    monkeypatch.setenv("WATTWISE_CEILING_DIRECTORIES", str(tmp_path))
    return project

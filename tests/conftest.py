from __future__ import annotations

import os
from pathlib import Path

import pytest

# A throwaway PostgreSQL cluster (session) and a fresh database per test, for any test that
# asks for them (they skip, saying why, where PostgreSQL is not installed).
from pg_support import pg_cluster, pg_url  # noqa: F401


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

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

# A throwaway PostgreSQL cluster (session) and a fresh database per test, for any test that
# asks for them (they skip, saying why, where PostgreSQL is not installed).
from pg_support import pg_cluster, pg_url  # noqa: F401

# `make test` runs the suite on pytest-xdist workers. Each test file is one scope (it stays on
# one worker, in order, so a module-scoped fixture is made once), and the files that start a
# server of a kind that must not run twice at once on one machine share a scope: one SLURM
# cluster (tests/slurm/) and one local Ray cluster (files named *ray*) at a time. (xdist's own
# --dist loadgroup cannot do it under pytest 9.2: the group it appends to a test's id is lost.)
SLURM_TESTS = "tests/slurm/"


def xdist_scope_of(nodeid: str) -> str:
    """The scheduling scope of a test id: ``slurm``, ``ray``, else the test's file."""
    path = nodeid.split("::", 1)[0]
    if path.startswith(SLURM_TESTS):
        return "slurm"
    return "ray" if "ray" in path.rsplit("/", 1)[-1] else path


try:
    from xdist.scheduler import LoadScopeScheduling
except ImportError:  # no pytest-xdist: the suite runs in one process
    pass
else:

    class _FileScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return xdist_scope_of(nodeid)

    def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> LoadScopeScheduling:
        return _FileScheduling(config, log)


@pytest.fixture(autouse=True)
def sigint_handled() -> Iterator[None]:
    """Every test starts with SIGINT handled, and leaves it as it found it.

    A process that inherits SIGINT *ignored* keeps ignoring it (Python installs no
    KeyboardInterrupt then), so a test that left it ignored made every later subprocess of
    its worker deaf to Ctrl-C: the interrupted-study tests waited out their timeouts. Which
    test or fixture leaves it so is not known yet; both leaks are undone here.
    """
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    before = signal.getsignal(signal.SIGINT)
    yield
    if signal.getsignal(signal.SIGINT) is not before:
        signal.signal(signal.SIGINT, before)


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

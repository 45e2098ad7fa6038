"""RunKind (role, excluded components, note, process tree) and active_run()."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import ClassVar

import pytest

import wattwise
from wattwise.exceptions import InvalidParameterError, RunStateError
from wattwise.store import open_store, project_footprint
from wattwise.testing import FakeMeter
from wattwise.tracking import (
    ParentRun,
    ProcessTree,
    Run,
    RunKind,
    active_run,
    register_run_kind,
    run_kind,
)


class FakeGpu(FakeMeter):
    name = "fake-gpu"


def fake() -> list[FakeMeter]:
    return [FakeMeter({"cpu:0": 20.0}), FakeGpu({"gpu:0": 50.0})]


@pytest.mark.parametrize(
    ("kind", "study_id", "role"),
    [("python", None, "final"), ("command", None, "final"), ("trial", "s1", "trial"),
     ("study", "s1", "study"), ("cache-fill", None, "cache-fill"), ("python", "s1", "tuning"),
     ("my-own", None, "final")],
)  # fmt: skip
def test_the_role_is_written_into_the_record_and_its_column(
    kind: str, study_id: str | None, role: str
) -> None:
    with wattwise.track("k", kind=kind, study_id=study_id, meters=fake()) as run:
        pass
    stored = open_store().get_run(run.id)
    assert (run.kind, run.role) == (kind, role)
    assert (stored.kind, stored.role, stored.record["role"]) == (kind, role, role)
    if kind != "study":  # (tuning's registered study kind carries a note)
        assert stored.record.get("attribution_note") is None


def test_a_reproducing_run_and_a_cache_fill_are_not_final_runs() -> None:
    with wattwise.track("work", meters=fake()):
        pass
    with wattwise.track("again", reproduces="a" * 32, meters=fake()) as again:
        pass
    with wattwise.track("fill", kind=run_kind("cache-fill"), meters=fake()):
        pass
    assert again.role == "reproduce"
    by_role = project_footprint(open_store().list_runs()).by_role
    assert {role: totals.runs for role, totals in by_role.items()} == {
        "final": 1, "reproduce": 1, "cache-fill": 1}  # fmt: skip


class HalfTree(ProcessTree):
    """Half of this process's CPU time: a kind's own attribution."""

    made: ClassVar[list[tuple[int, bool]]] = []

    def __init__(self, root_pid: int, is_child: bool) -> None:
        super().__init__(root_pid, is_child=is_child)
        HalfTree.made.append((root_pid, is_child))

    def cpu_s(self) -> float:
        return super().cpu_s() / 2


def test_a_kind_excludes_components_notes_its_attribution_and_makes_the_tree() -> None:
    kind = RunKind("half", role="final", excluded_components=("gpu",),
                   attribution_note="half of the process tree", make_tree=HalfTree)  # fmt: skip
    with wattwise.track("h", kind=kind, meters=fake()) as run:
        assert isinstance(run.tree, HalfTree)
    assert HalfTree.made[-1] == (os.getpid(), False)
    record = open_store().get_run(run.id).record
    assert record["attribution_note"] == "half of the process tree"
    assert list(record["meters"]) == ["fake"]  # the GPU meter was left out
    assert {c.component for c in run.result.components} == {"cpu"}


def test_registered_kinds_are_found_by_name_and_roles_are_checked() -> None:
    kind = register_run_kind(RunKind("distil", role="tuning"))
    assert run_kind("distil") is kind
    assert run_kind(kind) is kind
    assert run_kind("never-registered") == RunKind("never-registered")
    with pytest.raises(InvalidParameterError, match=r"role 'best'.*final, tuning, trial"):
        RunKind("x", role="best")


def test_the_tree_exists_after_start_only() -> None:
    run = Run("t", meters=fake())
    with pytest.raises(RunStateError, match="has not started"):
        _ = run.tree


def test_active_run_is_the_block_else_the_parent_else_none(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert active_run() is None
    monkeypatch.setenv("WATTWISE_RUN_ID", "f" * 32)
    monkeypatch.setenv("WATTWISE_STORE", "/somewhere/ledger.db")
    parent = active_run()
    assert isinstance(parent, ParentRun)
    assert (parent.id, parent.store_url) == ("f" * 32, "/somewhere/ledger.db")
    with wattwise.track("inner", meters=fake()) as run:
        assert active_run() is run
        assert run.parent_id == "f" * 32  # a nested run's parent is the command's run


def test_a_command_child_logs_annotates_and_seeds_through_its_parent(tmp_path: Path) -> None:
    code = (
        "import wattwise\n"
        "from wattwise.tracking import active_run\n"
        "run = active_run()\n"
        "run.log(step=1, acc=0.5)\n"
        "run.set_record('stage', 'pretrain')\n"
        "wattwise.seed_everything(3)\n"
    )
    out = subprocess.run(
        [sys.executable, "-m", "wattwise", "run", "-q", "--", sys.executable, "-c", code],
        capture_output=True, text=True, timeout=120, env=os.environ.copy(),
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    store = open_store()
    run = store.list_runs()[-1]
    assert run.record["stage"] == "pretrain" and run.record["seeds"]["seed"] == 3
    assert [m[:3] for m in store.metrics(run.id)] == [(1, "acc", 0.5)]

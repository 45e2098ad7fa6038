"""A trial's fixed cost, cut without losing a figure (issue 12).

The trials of a study share the environment captured once per process (the driver's for
inline trials, a worker's first trial's for the rest), and say so; the package listing is
read again only when a folder on the path changed; process trees are listed from the
kernel's children lists. What a trial record held before is still there.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

import wattwise
from wattwise.environment import _capture as env_capture
from wattwise.store import open_store
from wattwise.testing import FakeMeter
from wattwise.tracking._capture import claim_shared
from wattwise.tuning._tree import subtree_cpu_s

OPTIONS = {"interval_s": 0.05, "flush_s": 0.1, "emit_warnings": False}


def suggest(trial: Any) -> float:
    return float(trial.suggest_float("x", 0.0, 1.0))


def _git(repo: Path, *args: str) -> None:
    who = {"GIT_AUTHOR_NAME": "T", "GIT_AUTHOR_EMAIL": "t@example.org",
           "GIT_COMMITTER_NAME": "T", "GIT_COMMITTER_EMAIL": "t@example.org",
           "GIT_CONFIG_NOSYSTEM": "1"}  # fmt: skip
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True,
                   env={**os.environ, **who})  # fmt: skip


def _dirty_repo(project: Path) -> None:
    """A git repository with one commit and an uncommitted change (a diff to store)."""
    _git(project, "init", "-q", "-b", "main")
    (project / ".gitignore").write_text(".wattwise/\n")
    (project / "model.py").write_text("LR = 0.1\n")
    _git(project, "add", ".gitignore", "model.py")
    _git(project, "commit", "-q", "-m", "model")
    (project / "model.py").write_text("LR = 0.2\n")


def _same_environment(trial: Any, source: Any) -> None:
    for key in ("code", "environment", "hardware", "user"):
        assert trial.record[key] == source.record[key], key


def test_inline_trials_record_the_drivers_capture_and_their_own_diff(
    isolated_project: Path,
) -> None:
    _dirty_repo(isolated_project)
    result = wattwise.tune(
        suggest, n_trials=3, executor="inline", seed=0, progress=False,
        run_options={"meters": [FakeMeter({"cpu:0": 10.0})], **OPTIONS},
    )  # fmt: skip
    store = open_store()
    driver = store.get_run(result.study_id)
    assert "environment_from" not in driver.record  # the driver captured itself
    assert driver.record["code"]["dirty"] is True
    assert driver.record["environment"]["packages"]["psutil"] == psutil.__version__
    diff = driver.record["code"]["diff"]
    assert diff["stored"] is True
    for summary in result.trials:
        trial = store.get_run(summary.run_id)
        _same_environment(trial, driver)
        source = trial.record["environment_from"]
        assert source["run_id"] == result.study_id
        assert source["captured_at"] <= trial.started_at + 60
        content = store.get_artifact(trial.id, diff["artifact"])  # stored under the trial
        assert content is not None and b"+LR = 0.2" in content
        assert trial.status.value == "finished" and trial.record["sampler"]["samples"] >= 1
    with wattwise.track("after", meters=[FakeMeter({"cpu:0": 10.0})], **OPTIONS) as run:
        pass
    alone = store.get_run(run.id)
    assert "environment_from" not in alone.record  # a run outside a study captures its own
    assert alone.record["code"] == driver.record["code"]
    store.close()


def test_in_a_clean_tree_a_trial_is_inserted_with_its_environment(
    isolated_project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _dirty_repo(isolated_project)
    _git(isolated_project, "checkout", "--", "model.py")  # clean: no diff to store
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    as_inserted: dict[int, dict[str, Any]] = {}

    def objective(trial: Any) -> float:
        reader = open_store()
        try:  # what the ledger holds now, before any write of the trial but its first
            as_inserted[trial.number] = reader.get_run(trial.run.id).record
        finally:
            reader.close()
        if trial.number == 1:  # the driver's capture has ended: this is for trial 2 only
            monkeypatch.setenv("OMP_NUM_THREADS", "2")
        return suggest(trial)

    result = wattwise.tune(
        objective, n_trials=3, executor="inline", seed=0, progress=False,
        run_options={"meters": [FakeMeter({"cpu:0": 10.0})], **OPTIONS},
    )  # fmt: skip
    store = open_store()
    driver = store.get_run(result.study_id)
    assert driver.record["code"]["dirty"] is False
    assert "OMP_NUM_THREADS" not in driver.record["environment"]["variables"]
    for number in (1, 2):  # the driver's capture has ended by then
        first = as_inserted[number]
        assert first["environment_from"]["run_id"] == result.study_id
        for key in ("code", "hardware", "user"):
            assert first[key] == driver.record[key], key
        variables = first["environment"].pop("variables")
        assert variables.get("OMP_NUM_THREADS") == ("2" if number == 2 else None)  # per trial
        assert first["environment"] == {
            k: v for k, v in driver.record["environment"].items() if k != "variables"
        }
        final = store.get_run(result.trials[number].run_id).record
        assert final["environment_from"] == first["environment_from"]
    store.close()


def test_a_worker_captures_once_for_all_its_trials(
    isolated_project: Path,
) -> None:
    _dirty_repo(isolated_project)
    result = wattwise.tune(
        suggest, n_trials=3, executor="processes", n_workers=1, seed=0, progress=False,
        run_options={"meters": [FakeMeter({"cpu:0": 10.0})], **OPTIONS},
    )  # fmt: skip
    store = open_store()
    driver = store.get_run(result.study_id)
    first, *later = [store.get_run(t.run_id) for t in result.trials]
    assert first.pid != os.getpid() and {r.pid for r in later} == {first.pid}
    # The driver hands its capture to the worker with its first trial (when it has ended
    # within CAPTURE_WAIT_S; else that trial captures in the worker): one capture at most.
    source = first.record.get("environment_from", {}).get("run_id", first.id)
    assert source in (result.study_id, first.id)
    for trial in (first, *later):
        _same_environment(trial, driver)
        if trial is not first:
            assert trial.record["environment_from"]["run_id"] == source
        name = trial.record["code"]["diff"]["artifact"]
        assert store.get_artifact(trial.id, name) == store.get_artifact(driver.id, name)
    store.close()


def test_a_handed_capture_is_taken_only_for_the_same_interpreter() -> None:
    import pickle

    from wattwise.environment import Capture
    from wattwise.tracking import HandedCapture, adopt_study_capture, hand_off_study_capture

    key = ("study-h", os.getpid(), "/project", ("train.py",), True, 10)
    entry, mine = claim_shared(key, "driver-run")
    assert mine and hand_off_study_capture("study-h") is None  # under way, not waited for
    entry.found = Capture(record={"environment": {"executable": sys.executable}},
                          artifacts={"git-diff": b"+x\n"})  # fmt: skip
    entry.hardware = {"cpu": {"threads": 2}}
    entry.captured_at = 1.0
    entry.done.set()
    handed = hand_off_study_capture("study-h")
    assert handed is not None and handed.run_id == "driver-run"
    assert handed.where == key[2:]
    assert pickle.loads(pickle.dumps(handed)) == handed  # it crosses the worker's pipe
    assert not adopt_study_capture(handed)  # this process has the study's capture already
    other = HandedCapture("study-h", key[2:], "driver-run",
                          Capture(record={"environment": {"executable": "/other/python"}},
                                  artifacts={}), {}, 1.0)  # fmt: skip
    assert not adopt_study_capture(other)  # another interpreter: other packages


def test_a_failed_shared_capture_is_made_again_by_the_next_run() -> None:
    key = ("study-x", os.getpid(), "/nowhere", ("a.py",), True, 1)
    entry, mine = claim_shared(key, "run-1")
    assert mine and entry.run_id == "run-1"
    again, mine_too = claim_shared(key, "run-2")
    assert again is entry and not mine_too  # under way: wait for it, do not repeat it
    entry.done.set()  # ended without a result (the capture raised)
    retry, mine_now = claim_shared(key, "run-3")
    assert mine_now and retry is not entry and retry.run_id == "run-3"


def _age(*paths: Path, seconds: float = 3600.0) -> None:
    old = time.time() - seconds
    for path in paths:
        os.utime(path, (old, old))


def test_package_listing_follows_installs_upgrades_and_removals(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = tmp_path / "site"
    (site / "alpha-1.0.dist-info").mkdir(parents=True)
    egg = site / "beta.egg-info"
    egg.mkdir()
    (egg / "PKG-INFO").write_text("Metadata-Version: 2.1\nName: beta\nVersion: 1.0\n")
    _age(site / "alpha-1.0.dist-info", egg / "PKG-INFO", egg, site)
    assert env_capture.packages([str(site)]) == {"alpha": "1.0", "beta": "1.0"}

    listed: list[str] = []
    real_listdir = os.listdir
    monkeypatch.setattr(env_capture.os, "listdir",
                        lambda p: listed.append(str(p)) or real_listdir(p))  # fmt: skip
    assert env_capture.packages([str(site)]) == {"alpha": "1.0", "beta": "1.0"}
    assert listed == []  # nothing changed: the listing is reused

    (site / "alpha-1.0.dist-info").rename(site / "alpha-2.0.dist-info")  # an upgrade
    assert env_capture.packages([str(site)]) == {"alpha": "2.0", "beta": "1.0"}
    _age(site, seconds=3000.0)
    assert env_capture.packages([str(site)]) == {"alpha": "2.0", "beta": "1.0"}
    seen = len(listed)
    assert env_capture.packages([str(site)]) == {"alpha": "2.0", "beta": "1.0"}
    assert len(listed) == seen  # settled again: reused again
    (egg / "PKG-INFO").write_text("Metadata-Version: 2.1\nName: beta\nVersion: 3.0\n")
    _age(egg / "PKG-INFO", seconds=1800.0)  # rewritten in place, the folders untouched
    assert env_capture.packages([str(site)])["beta"] == "3.0"
    (site / "gamma-0.1.dist-info").mkdir()
    assert env_capture.packages([str(site)])["gamma"] == "0.1"
    (site / "gamma-0.1.dist-info").rmdir()
    assert "gamma" not in env_capture.packages([str(site)])


def test_subtree_cpu_counts_grandchildren(tmp_path: Path) -> None:
    burn = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.3: pass\n"
    burn += "time.sleep(60)\n"
    script = tmp_path / "burn.py"
    script.write_text(burn)
    child = subprocess.Popen(  # a shell whose child burns 0.3 s of CPU, then waits
        ["/bin/sh", "-c", f"{sys.executable} {script}; :"], start_new_session=True
    )
    try:
        deadline = time.monotonic() + 60
        grandchild_s = 0.0
        while time.monotonic() < deadline:
            kids = psutil.Process(child.pid).children()
            if kids:
                times = kids[0].cpu_times()
                grandchild_s = times.user + times.system
                if grandchild_s >= 0.3:
                    break
            time.sleep(0.05)
        assert grandchild_s >= 0.3, "the grandchild did not burn its CPU in time"
        assert subtree_cpu_s(child.pid) >= grandchild_s
        own = psutil.Process().cpu_times()
        assert subtree_cpu_s() >= own.user + own.system + grandchild_s
    finally:
        os.killpg(child.pid, signal.SIGKILL)
        child.wait()

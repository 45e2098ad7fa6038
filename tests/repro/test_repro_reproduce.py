from __future__ import annotations

import json
import sqlite3
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from repro_support import git, init_repo, python, write_project

from wattwise.cli import main
from wattwise.exceptions import ReproducibilityError
from wattwise.repro import DIFF_ARTIFACT, package_drift, prepare
from wattwise.store import RunRecord, RunStatus, open_store


def record_run(repo: Path, capfd: pytest.CaptureFixture[str]) -> str:
    """``wattwise run -- python train.py`` from ``repo/sub``; returns the run id."""
    code = main(["run", "-q", "--", python(), "train.py"])
    assert code == 0
    capfd.readouterr()
    return open_store().list_runs()[-1].id


def test_reproduce_check_rebuilds_a_dirty_run_in_a_worktree(
    monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    repo = init_repo(Path.cwd(), monkeypatch)
    sub = write_project(repo)
    (sub / "scale.txt").write_text("2.0\n")  # uncommitted, unstaged
    (sub / "train.py").write_text((sub / "train.py").read_text() + "print('dirty')\n")
    git(repo, "add", "sub/train.py")  # uncommitted, staged
    monkeypatch.chdir(sub)
    monkeypatch.setenv("PYTHONHASHSEED", "7")
    original = record_run(repo, capfd)
    # The work tree moves on; the reproduction must not see these changes.
    (sub / "scale.txt").write_text("3.0\n")
    git(repo, "commit", "-qam", "later")
    monkeypatch.setenv("PYTHONHASHSEED", "99")

    code = main(["reproduce", original[:8], "--check"])
    out = capfd.readouterr()
    assert code == 0, out.err
    assert "trained 2.0" in out.out and "dirty" in out.out
    assert "Reproduced: 2 final metrics within tolerance 0" in out.out
    store = open_store()
    new = store.list_runs()[-1]
    assert new.record["reproduces"] == original and "reproduction" in new.tags
    assert new.record["reproduction"]["is_reproduced"] is True
    assert new.record["environment"]["variables"]["PYTHONHASHSEED"] == "7"  # restored
    assert [m[1:3] for m in store.metrics(new.id)] == [m[1:3] for m in store.metrics(original)]
    # The worktree is gone and the user's tree is untouched.
    assert git(repo, "worktree", "list").count("\n") == 0
    assert (sub / "scale.txt").read_text() == "3.0\n"


def test_reproduce_reports_differences_and_tolerance_decides(
    monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    repo = init_repo(Path.cwd(), monkeypatch)
    write_project(repo)
    monkeypatch.chdir(repo / "sub")
    original = record_run(repo, capfd)
    monkeypatch.setenv("BIAS", "0.02")  # not allow-listed: the re-run really differs

    assert main(["reproduce", original, "--check", "--json"]) == 1
    data = json.loads(capfd.readouterr().out)
    assert data["is_reproduced"] is False
    acc = next(m for m in data["comparison"]["metrics"] if m["key"] == "acc")
    assert acc["difference"] == pytest.approx(0.02) and not acc["is_within"]

    assert main(["reproduce", original, "--check", "--tolerance", "acc=0.05"]) == 0
    out = capfd.readouterr().out
    assert "Reproduced" in out and "acc" in out and "+0.02" in out

    assert main(["reproduce", original, "--check", "--tolerance", "1%"]) == 1
    assert "Not reproduced: 1 of 2 metrics differ (acc)" in capfd.readouterr().out
    # Without --check the exit code is the command's own.
    assert main(["reproduce", original]) == 0


# -- refusals ------------------------------------------------------------------------


def insert(record: dict[str, Any], *, kind: str = "command") -> str:
    store = open_store()
    run_id = uuid.uuid4().hex
    now = time.time()
    store.insert_run(RunRecord(
        id=run_id, name="crafted", kind=kind, status=RunStatus.FINISHED, started_at=now,
        heartbeat_at=now, host="h", pid=1, record=record,
    ))  # fmt: skip
    store.close()
    return run_id


def command(cwd: Path) -> dict[str, Any]:
    return {"argv": [python(), "train.py"], "cwd": str(cwd), "is_command": True}


def refused(run_id: str, capfd: pytest.CaptureFixture[str]) -> str:
    assert main(["reproduce", run_id, "--check"]) == 1
    lines = capfd.readouterr().err.strip().splitlines()
    errors = [line for line in lines if line.startswith("wattwise: error: ")]
    assert len(errors) == 1 and lines[-1] == errors[0], lines  # one line, the last
    return errors[0]


def test_refuses_a_run_that_was_not_a_command(capfd: pytest.CaptureFixture[str]) -> None:
    run_id = insert({"command": {"argv": ["x"], "is_command": False}}, kind="python")
    err = refused(run_id, capfd)
    assert "not started by 'wattwise run'" in err and "wattwise run -- python" in err


def test_refuses_a_run_outside_git(capfd: pytest.CaptureFixture[str]) -> None:
    run_id = insert({"command": command(Path.cwd()),
                     "code": {"available": False, "reason": "not a git work tree"}})  # fmt: skip
    assert "did not run inside a git repository" in refused(run_id, capfd)
    assert "has no code record" in refused(insert({"command": command(Path.cwd())}), capfd)


def test_refuses_a_missing_commit(
    monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    repo = init_repo(Path.cwd(), monkeypatch)
    code = {"available": True, "commit": "0123456789abcdef" * 2 + "01234567",
            "root": str(repo), "dirty": False}  # fmt: skip
    err = refused(insert({"command": command(repo), "code": code}), capfd)
    assert "Commit 0123456789ab" in err and "is not in the repository" in err
    assert "git fetch" in err


def test_refuses_a_diff_that_does_not_apply_or_is_damaged(
    monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    repo = init_repo(Path.cwd(), monkeypatch)
    first = git(repo, "rev-parse", "HEAD")  # before sub/ existed
    sub = write_project(repo)
    (sub / "scale.txt").write_text("2.0\n")
    monkeypatch.chdir(sub)
    run_id = record_run(repo, capfd)
    store = open_store()
    record = store.get_run(run_id).record
    # The same diff on a commit where the file does not exist yet does not apply.
    moved = {**record, "code": {**record["code"], "commit": first}}
    store.flush_run(run_id, {"record": moved})
    err = refused(run_id, capfd)
    assert "does not apply on commit" in err and first[:12] in err
    # A diff whose bytes no longer match the recorded hash is refused before use.
    store.flush_run(run_id, {"record": record})
    conn = sqlite3.connect(store.path)
    conn.execute(
        "UPDATE blobs SET content = ? WHERE sha256 = "
        "(SELECT sha256 FROM artifacts WHERE run_id = ?)",
        (b"garbage", run_id),
    )
    conn.commit()
    conn.close()
    with pytest.raises(Exception, match="does not match its sha256"):
        store.get_artifact(run_id, DIFF_ARTIFACT)
    assert "damaged" in refused(run_id, capfd)
    # A dirty run whose diff was too large to store cannot be rebuilt either.
    big = {**record["code"], "diff": {**record["code"]["diff"], "stored": False,
                                       "reason": "larger than 32 MiB"}}  # fmt: skip
    store.flush_run(run_id, {"record": {**record, "code": big}})
    assert "larger than 32 MiB" in refused(run_id, capfd)
    assert git(repo, "worktree", "list").count("\n") == 0  # nothing left behind
    store.close()


def test_package_drift_lists_changed_and_missing_distributions(
    monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    drift = package_drift(
        {"numpy": "0.0.1", "pytest": "99", "gone-pkg": "1.0", "same": "1"},
        {"NumPy": "2.0", "pytest": "99", "same": "1", "new": "3"},
    )
    assert [(d.name, d.recorded, d.current) for d in drift] == [
        ("gone-pkg", "1.0", None),
        ("numpy", "0.0.1", "2.0"),
    ]
    repo = init_repo(Path.cwd(), monkeypatch)
    write_project(repo)
    monkeypatch.chdir(repo / "sub")
    run_id = record_run(repo, capfd)
    store = open_store()
    record = store.get_run(run_id).record
    record["environment"]["packages"]["numpy"] = "0.0.1"
    record["environment"]["packages"]["gone-pkg"] = "1.0"
    store.flush_run(run_id, {"record": record})
    plan = prepare(run_id, store=store)
    assert {d.name for d in plan.drift} == {"numpy", "gone-pkg"}
    store.close()
    assert main(["reproduce", run_id]) == 0
    err = capfd.readouterr().err
    assert "2 package versions differ from the record" in err
    assert "PACKAGE" in err and "0.0.1" in err and "not installed" in err


def test_reproduce_api_raises_reproducibility_error() -> None:
    run_id = insert({"command": {"is_command": False}}, kind="python")
    store = open_store()
    with pytest.raises(ReproducibilityError):
        prepare(run_id, store=store)
    store.close()
    assert subprocess.run(["git", "--version"], capture_output=True).returncode == 0


def test_refuses_what_was_not_stored_as_it_was(
    monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    repo = init_repo(Path.cwd(), monkeypatch)
    commit = git(repo, "rev-parse", "HEAD")
    clean = {"available": True, "commit": commit, "root": str(repo), "dirty": False}
    # A command line whose secret values were replaced by *** cannot be re-run.
    argv = [python(), "train.py", "--api-key=***", "--lr", "0.1"]
    run_id = insert({"command": {**command(repo), "argv": argv}, "code": clean})
    err = refused(run_id, capfd)
    assert "--api-key=***" in err and "environment variables" in err
    # Binary changes were recorded as size and hash only; secrets in the diff as ***.
    diff = {"sha256": "0" * 64, "size_bytes": 10, "files": 1, "stored": True,
            "artifact": DIFF_ARTIFACT, "redactions": 0}  # fmt: skip
    binary = {**diff, "binary": [{"path": "model.ckpt", "size_bytes": 5, "sha256": "1" * 64}],
              "binary_count": 1}  # fmt: skip
    run_id = insert({"command": command(repo), "code": {**clean, "dirty": True, "diff": binary}})
    err = refused(run_id, capfd)
    assert "binary file(s) (model.ckpt)" in err and "never stored" in err
    redacted = {**diff, "redactions": 2}
    run_id = insert({"command": command(repo), "code": {**clean, "dirty": True, "diff": redacted}})
    assert "2 secret value(s)" in refused(run_id, capfd)
    switched_off = {"stored": False, "reason": "diff capture was switched off (--no-diff)"}
    run_id = insert({"command": command(repo),
                     "code": {**clean, "dirty": True, "diff": switched_off}})  # fmt: skip
    assert "--no-diff" in refused(run_id, capfd)
    unknown = {"stored": False, "reason": "git status failed or took too long"}
    run_id = insert({"command": command(repo),
                     "code": {**clean, "dirty": None, "diff": unknown}})  # fmt: skip
    err = refused(run_id, capfd)
    assert "uncommitted changes is unknown" in err and "took too long" in err


def test_reproduce_keeps_the_original_region_unless_overridden(
    monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    repo = init_repo(Path.cwd(), monkeypatch)
    write_project(repo)
    monkeypatch.chdir(repo / "sub")
    monkeypatch.delenv("WATTWISE_REGION", raising=False)
    monkeypatch.delenv("WATTWISE_CLOUD", raising=False)
    monkeypatch.setenv("TZ", "UTC")  # names no country: an unset region falls back to WORLD
    assert main(["run", "-q", "--region", "DE", "--", python(), "train.py"]) == 0
    capfd.readouterr()
    original = open_store().list_runs()[-1]
    assert original.region == "DE"

    assert main(["reproduce", original.id]) == 0
    err = capfd.readouterr().err
    kept = open_store().list_runs()[-1]
    assert kept.record["reproduces"] == original.id
    assert kept.region == "DE" and kept.record["location"]["zone"] == "DE"
    assert "Location unknown" not in err and "world-average" not in err

    assert main(["reproduce", original.id, "--region", "FR"]) == 0
    capfd.readouterr()
    moved = open_store().list_runs()[-1]
    assert moved.record["reproduces"] == original.id and moved.region == "FR"

    runs = len(open_store().list_runs())
    assert main(["reproduce", original.id, "--region", "Atlantis"]) == 2
    err = capfd.readouterr().err
    assert err.startswith("wattwise: error: ") and err.count("\n") == 1 and "Atlantis" in err
    assert len(open_store().list_runs()) == runs  # refused before anything ran

from __future__ import annotations

import hashlib
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from repro_support import git, init_repo

import wattwise
from wattwise.environment import forget_seeds as forget
from wattwise.repro import (
    ALLOWED_ENV_VARS,
    DIFF_ARTIFACT,
    allowed_variables,
    capture,
    is_secret_name,
    redact_url,
)
from wattwise.store import open_store
from wattwise.testing import FakeMeter


def fake() -> list[FakeMeter]:
    return [FakeMeter({"cpu:0": 20.0})]


@pytest.fixture(autouse=True)
def forget_seeds() -> Iterator[None]:
    yield
    forget()


def test_capture_outside_git_says_so(tmp_path: Path) -> None:
    found = capture(tmp_path)
    assert found.record["code"]["available"] is False
    assert "git" in found.record["code"]["reason"]
    assert found.artifacts == {}
    env = found.record["environment"]
    assert env["python"] and env["os"] and env["kernel"]
    assert "pytest" in {name.lower() for name in env["packages"]}


def test_clean_repo_has_commit_and_no_diff(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = init_repo(tmp_path / "repo", monkeypatch)
    git(repo, "remote", "add", "origin", "https://alice:ghp_SECRET123@github.com/org/repo.git")
    code = capture(repo).record["code"]
    assert code["available"] and code["commit"] == git(repo, "rev-parse", "HEAD")
    assert code["branch"] == "main" and code["dirty"] is False and code["diff"] is None
    assert code["remote"] == "https://github.com/org/repo.git"  # credentials removed
    assert Path(code["root"]).resolve() == repo.resolve()


def test_dirty_repo_diff_includes_staged_and_unstaged_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = init_repo(tmp_path / "repo", monkeypatch)
    (repo / "a.py").write_text("x = 1\n")
    (repo / "b.py").write_text("y = 1\n")
    git(repo, "add", "a.py", "b.py")
    git(repo, "commit", "-q", "-m", "ab")
    (repo / "a.py").write_text("x = 2\n")  # unstaged
    (repo / "b.py").write_text("y = 2\n")
    git(repo, "add", "b.py")  # staged
    (repo / "notes.txt").write_text("untracked secret-ish notes\n")
    found = capture(repo, ["train.py"])
    code = found.record["code"]
    diff = found.artifacts[DIFF_ARTIFACT]
    assert code["dirty"] is True
    assert b"+x = 2" in diff and b"+y = 2" in diff
    assert code["diff"]["sha256"] == hashlib.sha256(diff).hexdigest()
    assert code["diff"]["size_bytes"] == len(diff) and code["diff"]["files"] == 2
    assert code["untracked"] == ["notes.txt"]  # names only
    assert b"untracked secret-ish" not in diff


def test_run_stores_the_diff_in_the_ledger_and_its_hash_in_the_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = init_repo(Path.cwd(), monkeypatch)
    (repo / "train.py").write_text("print('v1')\n")
    git(repo, "add", "train.py")
    git(repo, "commit", "-q", "-m", "v1")
    (repo / "train.py").write_text("print('v2')\n")
    with wattwise.track("dirty", meters=fake()) as run:
        pass
    store = open_store()
    record = store.get_run(run.id).record
    info = record["code"]["diff"]
    content = store.get_artifact(run.id, DIFF_ARTIFACT)
    assert content is not None and b"+print('v2')" in content
    assert hashlib.sha256(content).hexdigest() == info["sha256"]
    assert store.artifacts(run.id)[0]["sha256"] == info["sha256"]
    assert record["code"]["commit"] == git(repo, "rev-parse", "HEAD")


def test_script_hash_is_recorded(tmp_path: Path) -> None:
    script = tmp_path / "train.py"
    script.write_text("print(1)\n")
    code = capture(tmp_path, [sys.executable, "train.py"]).record["code"]
    assert code["script"] == {
        "path": "train.py",
        "sha256": hashlib.sha256(b"print(1)\n").hexdigest(),
    }


def test_allow_list_keeps_useful_variables_and_never_secrets() -> None:
    env = {
        "OMP_NUM_THREADS": "4",
        "CUDA_VISIBLE_DEVICES": "0,1",
        "HOME": "/home/alice",
        "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI",
        "HF_TOKEN": "hf_abc",
        "MY_PASSWORD": "hunter2",
        "WATTWISE_CAPTURE_ENV": "MY_PASSWORD,HF_TOKEN,EXPERIMENT",
        "EXPERIMENT": "ablation-3",
    }
    found = allowed_variables(env)
    assert found == {"OMP_NUM_THREADS": "4", "CUDA_VISIBLE_DEVICES": "0,1",
                     "EXPERIMENT": "ablation-3"}  # fmt: skip
    assert not any(is_secret_name(name) for name in ALLOWED_ENV_VARS)
    assert is_secret_name("GITHUB_TOKEN") and is_secret_name("db_password")
    assert redact_url("git@github.com:org/repo.git") == "git@github.com:org/repo.git"


SECRETS = {
    "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI-K7MDENG-bPxRfiCYEXAMPLEKEY",
    "HF_TOKEN": "hf_qwertyuiopASDFGHJKL0987654321",
    "MY_PASSWORD": "correct-horse-battery-staple-42",
}


def test_secrets_in_the_environment_never_reach_the_ledger_file(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for key, value in SECRETS.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("WATTWISE_CAPTURE_ENV", "MY_PASSWORD,HF_TOKEN,AWS_SECRET_ACCESS_KEY")
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    with wattwise.track("secretive", meters=fake()) as run:
        wattwise.seed_everything(1)
    # A command run too: its child sees the variables, the ledger must not.
    code = "import wattwise; wattwise.seed_everything(2); wattwise.log(acc=1.0)"
    out = subprocess.run(
        [sys.executable, "-m", "wattwise", "run", "-q", "--", sys.executable, "-c", code],
        capture_output=True, text=True, timeout=120, env=os.environ.copy(),
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    store = open_store()
    assert store.get_run(run.id).record["environment"]["variables"]["OMP_NUM_THREADS"] == "3"
    store.close()
    ledger = Path(".wattwise/ledger.db")
    conn = sqlite3.connect(ledger)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    blob = b"".join(p.read_bytes() for p in Path(".wattwise").rglob("*") if p.is_file())
    assert blob  # the ledger was written
    for value in SECRETS.values():
        assert value.encode() not in blob

"""The ledger does not grow with the user's data.

The stored diff holds text files only (binary changes: path, size, sha256), never the
``.wattwise/`` folder even when it is tracked, is kept as hash and ``--stat`` above the cap,
and identical diffs are stored once (content-addressed blobs, schema migration 3).
"""

from __future__ import annotations

import hashlib
import itertools
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from repro_support import git, init_repo

from wattwise.environment import _capture
from wattwise.exceptions import ReproducibilityError
from wattwise.repro import DIFF_ARTIFACT, DIFF_STAT_ARTIFACT, capture, prepare
from wattwise.store import RunRecord, RunStatus, SQLiteRunStore
from wattwise.store._schema import MIGRATIONS, SCHEMA_VERSION


def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "wattwise", "run", "-q", "--", *argv], capture_output=True,
        text=True, timeout=180, env=os.environ.copy(), check=False,
    )  # fmt: skip


def _checkpointed_size(ledger: Path) -> int:
    conn = sqlite3.connect(ledger)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return ledger.stat().st_size


def _last_run_id(ledger: Path) -> str:
    conn = sqlite3.connect(ledger)
    (run_id,) = conn.execute("SELECT id FROM runs ORDER BY started_at DESC LIMIT 1").fetchone()
    conn.close()
    return str(run_id)


def test_binary_change_is_recorded_as_path_size_and_hash_without_content(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    repo = init_repo(Path.cwd() / "repo", monkeypatch)
    (repo / "weights.bin").write_bytes(bytes(range(256)) * 64)
    (repo / "train.py").write_text("lr = 0.1\n")
    git(repo, "add", "weights.bin", "train.py")
    git(repo, "commit", "-q", "-m", "data")
    changed = os.urandom(20_000) + b"\0"
    (repo / "weights.bin").write_bytes(changed)
    (repo / "train.py").write_text("lr = 0.2\n")
    found = capture(repo)
    info = found.record["code"]["diff"]
    diff = found.artifacts[DIFF_ARTIFACT]
    assert b"+lr = 0.2" in diff and b"weights.bin" not in diff
    assert info["files"] == 1 and info["binary_count"] == 1
    assert info["binary"] == [{"path": "weights.bin", "size_bytes": len(changed),
                               "sha256": hashlib.sha256(changed).hexdigest()}]  # fmt: skip
    assert info["sha256"] == hashlib.sha256(diff).hexdigest() and info["stored"] is True


def test_binary_files_are_hashed_within_a_budget_per_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    repo = init_repo(Path.cwd() / "repo", monkeypatch)
    for name in ("a.bin", "b.bin", "c.bin"):
        (repo / name).write_bytes(b"\0" * 1000)
    git(repo, "add", "a.bin", "b.bin", "c.bin")
    git(repo, "commit", "-q", "-m", "bins")
    for name in ("a.bin", "b.bin", "c.bin"):
        (repo / name).write_bytes(b"\0\1" * 600)
    (repo / "b.bin").unlink()
    monkeypatch.setattr(_capture, "_MAX_HASHED_BYTES", 2000)  # 256 MiB by default
    info = capture(repo).record["code"]["diff"]
    facts = {b["path"]: b for b in info["binary"]}
    assert info["binary_count"] == 3 and facts["b.bin"] == {"path": "b.bin", "deleted": True}
    assert facts["a.bin"]["sha256"] == hashlib.sha256(b"\0\1" * 600).hexdigest()
    assert facts["c.bin"]["sha256"] is None and "not hashed" in facts["c.bin"]["note"]
    assert facts["c.bin"]["size_bytes"] == 1200


def test_wattwise_folder_is_left_out_even_when_tracked(monkeypatch: pytest.MonkeyPatch) -> None:
    repo = init_repo(Path.cwd() / "repo", monkeypatch)
    (repo / ".wattwise").mkdir()
    (repo / ".wattwise" / "notes.txt").write_text("v1\n")
    git(repo, "add", "-f", ".wattwise/notes.txt")
    git(repo, "commit", "-q", "-m", "tracked ledger folder")
    (repo / ".wattwise" / "notes.txt").write_text("v2\n")
    only_ledger = capture(repo).record["code"]
    assert only_ledger["dirty"] is False and only_ledger["diff"] is None
    (repo / "a.txt").write_text("hello\n")
    git(repo, "add", "a.txt")
    found = capture(repo / ".wattwise")  # even asked from inside the folder
    assert b".wattwise" not in found.artifacts[DIFF_ARTIFACT]
    assert b"+hello" in found.artifacts[DIFF_ARTIFACT]


def test_diff_over_the_cap_is_kept_as_hash_and_stat_and_reproduce_says_why(
    monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    repo = init_repo(Path.cwd(), monkeypatch)
    (repo / "big.txt").write_text("line\n" * 10)
    (repo / "job.py").write_text("print('ok')\n")
    git(repo, "add", "big.txt", "job.py")
    git(repo, "commit", "-q", "-m", "text")
    (repo / "big.txt").write_text("changed line\n" * 5000)
    found = capture(repo, diff_max_bytes=10_000)
    info = found.record["code"]["diff"]
    assert info["stored"] is False and info["size_bytes"] > 10_000
    assert "10,000 byte cap" in info["reason"]
    assert DIFF_ARTIFACT not in found.artifacts
    stat = found.artifacts[DIFF_STAT_ARTIFACT].decode()
    assert "big.txt" in stat and "1 file changed" in stat
    # The whole path: a run over the default cap (1 MB) stores no diff and cannot be rebuilt.
    (repo / "big.txt").write_text("another changed line\n" * 60_000)
    assert _run(sys.executable, "job.py").returncode == 0
    ledger = Path(".wattwise/ledger.db")
    run_id = _last_run_id(ledger)
    store = SQLiteRunStore(ledger)
    assert store.get_artifact(run_id, DIFF_ARTIFACT) is None
    assert b"big.txt" in (store.get_artifact(run_id, DIFF_STAT_ARTIFACT) or b"")
    with pytest.raises(ReproducibilityError, match="byte cap"):
        prepare(run_id, store=store)
    store.close()


def test_a_huge_diff_is_never_held_in_memory_nor_read_to_the_end(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    repo = init_repo(Path.cwd() / "repo", monkeypatch)
    (repo / "data.jsonl").write_text('{"x": 0}\n')
    git(repo, "add", "data.jsonl")
    git(repo, "commit", "-q", "-m", "data")
    (repo / "data.jsonl").write_text('{"x": 1}\n' * 200_000)  # a 1.8 MB text diff
    # The stream hashes what it reads and keeps nothing past the cap ...
    found = capture(repo, diff_max_bytes=1000)
    info = found.record["code"]["diff"]
    assert info["size_bytes"] > 1_800_000 and len(info["sha256"]) == 64
    assert DIFF_ARTIFACT not in found.artifacts
    # ... and stops git past its read limit (256 MiB; lowered here to 64 kB).
    monkeypatch.setattr(_capture, "_MAX_DIFF_READ", 64 * 1024)
    info = capture(repo, diff_max_bytes=1000).record["code"]["diff"]
    assert info["sha256"] is None and info["size_bytes"] is None
    assert "not read past" in info["reason"] and info["stored"] is False


def test_diff_switched_off_records_the_dirty_flag_only(monkeypatch: pytest.MonkeyPatch) -> None:
    repo = init_repo(Path.cwd() / "repo", monkeypatch)
    (repo / ".gitignore").write_text("changed\n")
    found = capture(repo, diff=False)
    assert found.artifacts == {}
    assert found.record["code"]["dirty"] is True
    assert found.record["code"]["diff"] == {
        "stored": False, "reason": "diff capture was switched off (--no-diff)",
    }  # fmt: skip


def test_identical_diffs_are_stored_once_and_freed_with_their_last_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    repo = init_repo(Path.cwd(), monkeypatch)
    (repo / "job.py").write_text("print('v1')\n")
    git(repo, "add", "job.py")
    git(repo, "commit", "-q", "-m", "v1")
    (repo / "job.py").write_text("print('v2')\n")
    for _ in range(3):
        assert _run(sys.executable, "job.py").returncode == 0
    ledger = Path(".wattwise/ledger.db")
    conn = sqlite3.connect(ledger)
    conn.execute("PRAGMA foreign_keys = ON")
    rows = conn.execute("SELECT run_id, sha256 FROM artifacts WHERE name = ?", (DIFF_ARTIFACT,))
    artifacts = rows.fetchall()
    assert len(artifacts) == 3 and len({sha for _, sha in artifacts}) == 1
    assert conn.execute("SELECT count(*) FROM blobs").fetchone()[0] == 1
    # Deleting runs (cascade) keeps the blob while one run still has it, then frees it.
    for index, (run_id, _) in enumerate(artifacts):
        conn.execute("DELETE FROM runs WHERE id = ?", (run_id,))
        conn.commit()
        left = conn.execute("SELECT count(*) FROM blobs").fetchone()[0]
        assert left == (1 if index < 2 else 0)
    conn.close()


def test_put_artifact_replaces_by_name_and_get_verifies_the_hash(tmp_path: Path) -> None:
    store = SQLiteRunStore(tmp_path / "ledger.db")
    for run_id in ("r1", "r2"):
        now = time.time()
        store.insert_run(RunRecord(id=run_id, name="r", kind="command", status=RunStatus.FINISHED,
                                   started_at=now, heartbeat_at=now, host="h", pid=1))  # fmt: skip
    conn = sqlite3.connect(store.path)
    digest = store.put_artifact("r1", "git-diff", b"same")
    assert store.put_artifact("r2", "git-diff", b"same") == digest
    store.put_artifact("r1", "git-diff", b"replaced")
    assert store.get_artifact("r1", "git-diff") == b"replaced"
    assert store.get_artifact("r2", "git-diff") == b"same"
    assert [a["sha256"] for a in store.artifacts("r2")] == [digest]
    assert conn.execute("SELECT count(*) FROM blobs").fetchone()[0] == 2
    store.put_artifact("r2", "git-diff", b"replaced")  # b"same" has no user left
    assert conn.execute("SELECT count(*) FROM blobs").fetchone()[0] == 1
    conn.execute("UPDATE blobs SET content = ?", (b"tampered",))
    conn.commit()
    conn.close()
    with pytest.raises(Exception, match="does not match its sha256"):
        store.get_artifact("r1", "git-diff")
    store.close()


def _insert_run(conn: sqlite3.Connection, run_id: str) -> None:
    conn.execute(
        "INSERT INTO runs (id, name, kind, status, started_at, heartbeat_at, host, pid) "
        "VALUES (?, 'old', 'command', 'finished', ?, ?, 'h', 1)",
        (run_id, time.time(), time.time()),
    )


def test_a_schema_2_ledger_migrates_its_artifacts_into_shared_blobs(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    for migration in MIGRATIONS[:2]:
        for statement in migration.sqlite:
            conn.execute(statement)
    conn.execute("PRAGMA user_version = 2")
    for run_id in ("a1", "a2", "a3"):
        _insert_run(conn, run_id)
    contents = {"a1": b"diff one", "a2": b"diff one", "a3": b"diff two"}
    for run_id, content in contents.items():
        conn.execute(
            "INSERT INTO artifacts (run_id, name, sha256, size_bytes, content, created_at) "
            "VALUES (?, 'git-diff', ?, ?, ?, 0)",
            (run_id, hashlib.sha256(content).hexdigest(), len(content), content),
        )
    conn.commit()
    conn.close()
    store = SQLiteRunStore(path)
    for run_id, content in contents.items():  # readable before any write
        assert store.get_artifact(run_id, "git-diff") == content
    store.annotate_run("a1", "note", "a write migrates the file")
    store.close()
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert conn.execute("SELECT count(*) FROM blobs").fetchone()[0] == 2
    columns = [row[1] for row in conn.execute("PRAGMA table_info(artifacts)")]
    assert "content" not in columns
    conn.close()
    store = SQLiteRunStore(path)
    for run_id, content in contents.items():
        assert store.get_artifact(run_id, "git-diff") == content
    store.close()


def test_ledger_growth_per_run_stays_under_100_kb_with_big_binary_changes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    repo = init_repo(Path.cwd(), monkeypatch)
    (repo / "job.py").write_text("print('trained')\n")
    (repo / "model.ckpt").write_bytes(os.urandom(5 * 2**20))
    git(repo, "add", "job.py", "model.ckpt")
    git(repo, "commit", "-q", "-m", "model")
    ledger = Path(".wattwise/ledger.db")
    assert _run(sys.executable, "job.py").returncode == 0
    git(repo, "add", "-f", ".wattwise/ledger.db")  # the ledger is tracked too
    git(repo, "commit", "-q", "-m", "ledger")
    sizes = [_checkpointed_size(ledger)]
    for _ in range(3):
        (repo / "model.ckpt").write_bytes(os.urandom(5 * 2**20))  # a new checkpoint each run
        assert _run(sys.executable, "job.py").returncode == 0
        sizes.append(_checkpointed_size(ledger))
    growth = [after - before for before, after in itertools.pairwise(sizes)]
    assert max(growth) < 100_000, growth
    conn = sqlite3.connect(ledger)
    assert conn.execute("SELECT count(*) FROM blobs WHERE size_bytes > 100000").fetchone() == (0,)
    conn.close()
    store = SQLiteRunStore(ledger)
    record = store.get_run(_last_run_id(ledger)).record
    store.close()
    assert [b["path"] for b in record["code"]["diff"]["binary"]] == ["model.ckpt"]

"""Host-local election by flock: one winner, losers name it, takeover when it dies."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from wattwise.tracking._election import (
    LOCK_DIR_ENV,
    Ballot,
    ElectionError,
    lock_path,
    runtime_dir,
)

HOLDER = """
import sys, time
from pathlib import Path
from wattwise.tracking._election import Ballot
ballot = Ballot(Path(sys.argv[1]), sys.argv[2])
print("won" if ballot.retry() else "lost", flush=True)
time.sleep(60)
"""


def test_one_winner_the_loser_names_it_and_takes_over_after_release(tmp_path: Path) -> None:
    path = lock_path(tmp_path, "job-1", "node-a", "cpu:node-a")
    first, second = Ballot(path, "run-first"), Ballot(path, "run-second")
    assert first.retry() and first.won
    assert not second.retry() and not second.won
    assert second.holder() == "run-first"
    first.release()
    assert second.retry() and second.holder() == "run-second"
    assert not first.retry()
    second.release()


def test_keys_differ_by_job_host_and_device(tmp_path: Path) -> None:
    paths = {lock_path(tmp_path, j, h, d) for j in ("a", "b") for h in ("x", "y")
             for d in ("cpu:x", "gpu:GPU-1")}  # fmt: skip
    assert len(paths) == 8
    assert lock_path(tmp_path, "a/../b", "x", "cpu:x").parent == tmp_path


def test_another_process_holds_the_lock_until_it_is_killed(tmp_path: Path) -> None:
    path = lock_path(tmp_path, "job-2", "h", "cpu:h")
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(path), "run-child"],
                            stdout=subprocess.PIPE, text=True, start_new_session=True)  # fmt: skip
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "won"
        mine = Ballot(path, "run-parent")
        assert not mine.retry()
        assert mine.holder() == "run-child"
        os.killpg(proc.pid, signal.SIGKILL)  # our own group only
        proc.wait(timeout=60)
        deadline = time.monotonic() + 60  # a loaded machine reaps the holder late
        while not mine.retry():
            assert time.monotonic() < deadline, "the dead holder's lock was never dropped"
            time.sleep(0.01)
        assert mine.holder() == "run-parent"
        mine.release()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()


def test_runtime_dir_is_private(tmp_path: Path) -> None:
    folder = runtime_dir({"XDG_RUNTIME_DIR": str(tmp_path)})
    assert folder == tmp_path / "wattwise" / "jobs"
    assert folder.stat().st_mode & 0o777 == 0o700
    chosen = tmp_path / "locks"
    assert runtime_dir({LOCK_DIR_ENV: str(chosen)}) == chosen
    open_folder = tmp_path / "open"
    open_folder.mkdir()
    open_folder.chmod(0o777)
    with pytest.raises(ElectionError, match=r"closed to others.*WATTWISE_JOB_LOCK_DIR"):
        runtime_dir({LOCK_DIR_ENV: str(open_folder)})
    a_file = tmp_path / "file"
    a_file.write_text("x")
    with pytest.raises(ElectionError, match="Cannot use"):
        runtime_dir({LOCK_DIR_ENV: str(a_file / "sub")})

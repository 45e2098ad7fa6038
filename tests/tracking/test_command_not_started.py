"""``wattwise run -- FOLDER`` says the folder is a directory (exit 126), as the shells do."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from wattwise.store import RunStatus, open_store


def _run(program: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "wattwise", "run", "--", program],
                          capture_output=True, text=True, timeout=60, check=False)  # fmt: skip


def test_a_folder_is_a_directory_not_permission_denied(tmp_path: Path) -> None:
    folder = tmp_path / "data"
    folder.mkdir()
    done = _run(str(folder))
    assert done.returncode == 126
    [line] = done.stderr.strip().splitlines()
    assert line == (
        f"wattwise: error: Cannot start {str(folder)!r}: it is a directory, not a program "
        "(exit code 126). Check the command and your PATH."
    )
    [run] = open_store().list_runs()
    assert (run.status, run.exit_code) == (RunStatus.FAILED, 126)
    assert run.record["error"] == f"{folder}: it is a directory, not a program"


def test_a_file_without_execute_permission_is_still_permission_denied(tmp_path: Path) -> None:
    script = tmp_path / "train.sh"
    script.write_text("#!/bin/sh\necho hi\n")
    script.chmod(0o644)
    done = _run(str(script))
    assert done.returncode == 126
    [line] = done.stderr.strip().splitlines()
    assert "Permission denied" in line and "directory" not in line

"""Helpers for the reproducibility tests: throw-away git repositories and command runs."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

GIT_ENV = {
    "GIT_AUTHOR_NAME": "Test",
    "GIT_AUTHOR_EMAIL": "test@example.org",
    "GIT_COMMITTER_NAME": "Test",
    "GIT_COMMITTER_EMAIL": "test@example.org",
    "GIT_CONFIG_NOSYSTEM": "1",
}

FAST = {"WATTWISE_INTERVAL_S": "0.1", "WATTWISE_FLUSH_S": "0.3"}


def git(repo: Path, *args: str) -> str:
    out = subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, check=True,
        env={**os.environ, **GIT_ENV},
    )  # fmt: skip
    return out.stdout.strip()


def init_repo(path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A git repository at ``path`` with a .gitignore for .wattwise/ and one commit."""
    for key, value in {**GIT_ENV, **FAST}.items():
        monkeypatch.setenv(key, value)
    path.mkdir(parents=True, exist_ok=True)
    git(path, "init", "-q", "-b", "main")
    (path / ".gitignore").write_text(".wattwise/\n")
    git(path, "add", ".gitignore")
    git(path, "commit", "-q", "-m", "init")
    return path


TRAIN = textwrap.dedent(
    """
    import os, sys
    from pathlib import Path
    import wattwise

    scale = float(Path("scale.txt").read_text())
    bias = float(os.environ.get("BIAS", "0"))
    wattwise.log(step=0, acc=0.5 * scale + bias)
    wattwise.log(step=1, acc=0.9 * scale + bias, loss=1.0 / scale)
    print("trained", scale)
    """
)


def write_project(repo: Path) -> Path:
    """``sub/train.py`` reads ``sub/scale.txt`` and logs acc/loss; committed."""
    sub = repo / "sub"
    sub.mkdir(exist_ok=True)
    (sub / "train.py").write_text(TRAIN)
    (sub / "scale.txt").write_text("1.0\n")
    git(repo, "add", "sub")
    git(repo, "commit", "-q", "-m", "train")
    return sub


def python() -> str:
    return sys.executable

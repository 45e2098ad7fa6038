"""What a run needs to be repeated: code version, Python, packages, OS.

Cheap by design: packages are read from installed metadata (no pip subprocess), git is
asked a few short questions, and all of it runs on the sampler thread, not at start.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

_GIT_TIMEOUT_S = 5.0


def _git(cwd: Path, *args: str) -> str | None:
    try:
        out = subprocess.run(
            ["git", *args],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=_GIT_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def git_info(cwd: Path) -> dict[str, Any]:
    """Commit, branch, remote and dirty flag of the git work tree at ``cwd``.

    Returns ``{"available": False, "reason": ...}`` outside a git repository.
    """
    commit = _git(cwd, "rev-parse", "HEAD")
    if commit is None:
        return {"available": False, "reason": "not a git work tree (or git is missing)"}
    status = _git(cwd, "status", "--porcelain", "--untracked-files=no")
    return {
        "available": True,
        "commit": commit,
        "branch": _git(cwd, "rev-parse", "--abbrev-ref", "HEAD"),
        "remote": _git(cwd, "config", "--get", "remote.origin.url"),
        "dirty": bool(status) if status is not None else None,
        "root": _git(cwd, "rev-parse", "--show-toplevel"),
    }


def packages() -> dict[str, str]:
    """Installed distributions, name → version, from package metadata."""
    found: dict[str, str] = {}
    for dist in metadata.distributions():
        name = dist.name
        if name:
            found.setdefault(name, dist.version)
    return dict(sorted(found.items(), key=lambda kv: kv[0].lower()))


def python_and_os() -> dict[str, Any]:
    """Interpreter and operating-system facts."""
    uname = platform.uname()
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "executable": sys.executable,
        "os": uname.system,
        "kernel": uname.release,
        "machine": uname.machine,
        "platform": platform.platform(),
    }


def capture(cwd: Path) -> dict[str, Any]:
    """Everything above, as one JSON-serialisable dict."""
    return {
        "code": git_info(cwd),
        "environment": {**python_and_os(), "packages": packages()},
        "user": os.environ.get("USER") or os.environ.get("USERNAME"),
    }

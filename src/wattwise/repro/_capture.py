"""What a run needs to be repeated: code version and diff, Python, packages, OS, variables.

Cheap by design: packages are read from installed metadata (no pip subprocess), git is
asked three or four short questions, and all of it runs on a background thread started by
the run, never on the path that starts it. The uncommitted diff is returned as an
artifact for the ledger; the record keeps only its hash and size.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import platform
import re
import subprocess
import sys
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

from wattwise.repro._envvars import allowed_variables

_GIT_TIMEOUT_S = 5.0
#: Name of the ledger artifact that holds a run's ``git diff HEAD``.
DIFF_ARTIFACT = "git-diff"
#: A diff larger than this (bytes) is not stored; the record says so.
MAX_DIFF_BYTES = 32 * 1024 * 1024
_MAX_UNTRACKED = 100
_MAX_SCRIPT_BYTES = 16 * 1024 * 1024
_CREDENTIALS = re.compile(r"^([A-Za-z][\w+.-]*://)[^/@]*@")
_SEPARATORS = re.compile(r"[-_.]+")
#: ``git diff`` options that make the patch independent of the user's git configuration.
DIFF_ARGS = (
    "diff", "HEAD", "--binary", "--no-color", "--no-ext-diff", "--no-textconv",
    "--src-prefix=a/", "--dst-prefix=b/",
)  # fmt: skip


@dataclasses.dataclass
class Capture:
    """What :func:`capture` found.

    Attributes:
        record: JSON-serialisable facts, merged into the run record (``code``,
            ``environment``, ``user``).
        artifacts: Large facts for the ledger's artifact table, name → bytes (the diff).
    """

    record: dict[str, Any]
    artifacts: dict[str, bytes]


def _git_bytes(cwd: Path, *args: str) -> bytes | None:
    try:
        out = subprocess.run(
            ["git", *args], cwd=cwd, capture_output=True, timeout=_GIT_TIMEOUT_S, check=False,
            env={**os.environ, "GIT_OPTIONAL_LOCKS": "0", "LC_ALL": "C"},
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout if out.returncode == 0 else None


def _git(cwd: Path, *args: str) -> str | None:
    out = _git_bytes(cwd, *args)
    return out.decode("utf-8", "replace").strip() if out is not None else None


def redact_url(url: str | None) -> str | None:
    """A remote URL without the user name or token it may embed (``https://tok@host``)."""
    return _CREDENTIALS.sub(r"\1", url) if url else url


def git_info(cwd: Path) -> tuple[dict[str, Any], bytes | None]:
    """The git state of the work tree at ``cwd`` and its uncommitted diff.

    Returns:
        ``(info, diff)``: ``info`` has ``commit``, ``branch``, ``remote`` (credentials
        removed), ``dirty`` (tracked files differ from ``HEAD``, staged or not), ``root``,
        ``diff`` (sha256, size, whether stored) and ``untracked`` (names only, never
        contents). ``diff`` is ``git diff HEAD --binary`` as bytes, or None when clean or
        too large. Outside a repository: ``({"available": False, "reason": ...}, None)``.
    """
    head = _git(cwd, "rev-parse", "HEAD", "--abbrev-ref", "HEAD", "--show-toplevel")
    if head is None or len(head.splitlines()) != 3:
        reason = "not a git work tree, no commit yet, or git is missing"
        return {"available": False, "reason": reason}, None
    commit, branch, root = head.splitlines()
    status = _git(cwd, "status", "--porcelain", "--untracked-files=normal")
    lines = status.splitlines() if status is not None else []
    untracked = [
        line[3:]
        for line in lines
        if line.startswith("?? ") and not line[3:].startswith(".wattwise/")
    ]
    dirty = any(not line.startswith("?? ") for line in lines) if status is not None else None
    info: dict[str, Any] = {
        "available": True,
        "commit": commit,
        "branch": branch,
        "remote": redact_url(_git(cwd, "config", "--get", "remote.origin.url")),
        "dirty": dirty,
        "root": root,
        "untracked": untracked[:_MAX_UNTRACKED],
        "untracked_count": len(untracked),
        "diff": None,
    }
    diff = _git_bytes(cwd, *DIFF_ARGS) if dirty else None
    if diff:
        stored = len(diff) <= MAX_DIFF_BYTES
        info["diff"] = {
            "sha256": hashlib.sha256(diff).hexdigest(),
            "size_bytes": len(diff),
            "files": diff.count(b"\ndiff --git ") + int(diff.startswith(b"diff --git ")),
            "artifact": DIFF_ARTIFACT if stored else None,
            "stored": stored,
        }
        if not stored:
            info["diff"]["reason"] = f"larger than {MAX_DIFF_BYTES // 2**20} MiB"
            diff = None
    return info, diff or None


def script_info(argv: Sequence[str], cwd: Path) -> dict[str, Any] | None:
    """The entry-point script of ``argv`` (first ``.py`` argument that is a file) and its hash."""
    for arg in argv[:3]:
        if not arg.endswith(".py"):
            continue
        path = Path(arg) if Path(arg).is_absolute() else cwd / arg
        try:
            if path.is_file() and path.stat().st_size <= _MAX_SCRIPT_BYTES:
                digest = hashlib.sha256(path.read_bytes()).hexdigest()
                return {"path": arg, "sha256": digest}
        except OSError:
            return None
    return None


def canonical_name(name: str) -> str:
    """A distribution name in PEP 503 normal form (``Scikit_Learn`` → ``scikit-learn``)."""
    return _SEPARATORS.sub("-", name).lower()


def packages() -> dict[str, str]:
    """Installed distributions, canonical name → version, from package metadata (no pip).

    Fast path: a ``name-version.dist-info`` folder names both (wheel spec), so its
    METADATA file is not parsed; other layouts (``.egg-info``) are read with
    ``importlib.metadata``. The first one on ``sys.path`` wins, as for imports.
    """
    found: dict[str, str] = {}
    seen: set[str] = set()
    for entry in sys.path:
        folder = entry or "."
        if folder in seen or not os.path.isdir(folder):
            continue
        seen.add(folder)
        try:
            names = sorted(os.listdir(folder))
        except OSError:
            continue
        for item in names:
            if item.endswith(".dist-info"):
                name, sep, version = item[: -len(".dist-info")].partition("-")
                if sep and version:
                    found.setdefault(canonical_name(name), version)
                    continue
            elif not item.endswith(".egg-info"):
                continue
            dist = metadata.Distribution.at(os.path.join(folder, item))
            name = dist.metadata["Name"] if dist.metadata is not None else None
            if name:
                found.setdefault(canonical_name(name), dist.version)
    return dict(sorted(found.items()))


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


def capture(cwd: Path, argv: Sequence[str] = ()) -> Capture:
    """Everything a run records about its code and environment.

    Args:
        cwd: The run's working directory (git is asked there).
        argv: The run's command line, to find and hash its entry-point script.

    Returns:
        The record part (``code``, ``environment`` with ``variables`` from the
        allow-list, ``user``) and the artifacts (the diff, when dirty).
    """
    code, diff = git_info(cwd)
    script = script_info(argv, cwd)
    if script is not None:
        code["script"] = script
    record = {
        "code": code,
        "environment": {
            **python_and_os(),
            "packages": packages(),
            "variables": allowed_variables(),
        },
        "user": os.environ.get("USER") or os.environ.get("USERNAME"),
    }
    return Capture(record=record, artifacts={DIFF_ARTIFACT: diff} if diff else {})

"""What a run needs to be repeated: code version and diff, Python, packages, OS, variables.

Cheap by design: packages are read from installed metadata (no pip subprocess), git is
asked four or five short questions, and all of it runs on a background thread started by
the run, never on the path that starts it. The uncommitted diff is returned as an
artifact for the ledger; the record keeps only its hash and size.

Bounded by design: the diff holds text files only (a changed binary file is recorded as
path, size and sha256), never the ``.wattwise/`` folder, and above ``diff_max_bytes``
(1 MB) only its hash and ``--stat`` are kept. Redacted by design: secrets in the diff,
the remote URL, variables and file names become ``***`` here, before anything is stored
(:mod:`wattwise.environment._redact`). For ``wattwise run -- CMD`` the environment recorded is
the job's interpreter's, not wattwise's (:mod:`wattwise.environment._interpreter`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import platform
import re
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

from wattwise.environment._envvars import allowed_variables
from wattwise.environment._interpreter import is_this_interpreter, query, resolve
from wattwise.environment._redact import redact_argv, redact_bytes, redact_text, redact_url

_GIT_TIMEOUT_S = 5.0
#: Name of the ledger artifact that holds a run's ``git diff HEAD`` (text files only).
DIFF_ARTIFACT = "git-diff"
#: Name of the ledger artifact that holds ``git diff HEAD --stat`` when the diff is too big.
DIFF_STAT_ARTIFACT = "git-diff-stat"
#: Default cap on a stored diff, bytes: above it only its hash and ``--stat`` are kept.
DIFF_MAX_BYTES = 1_000_000
_MAX_STAT_BYTES = 256 * 1024
_MAX_HASHED_BYTES = 256 * 2**20
#: A diff is read (and hashed) up to this many bytes; git is stopped beyond.
_MAX_DIFF_READ = 256 * 2**20
_MAX_LISTED = 100
_MAX_UNTRACKED = 100
_MAX_SCRIPT_BYTES = 16 * 1024 * 1024
_SEPARATORS = re.compile(r"[-_.]+")
#: What diff capture looks at: the whole work tree except wattwise's own folder, wherever
#: it is and even when it is tracked (its ledger must never be copied into itself).
PATHSPEC = (":(top)", ":(top,exclude,glob)**/.wattwise/**")
#: ``git diff`` options that make the patch independent of the user's git configuration.
#: No ``--binary``: a binary file's content is never stored, only its size and hash.
DIFF_ARGS = (
    "diff", "HEAD", "--no-color", "--no-ext-diff", "--no-textconv", "--no-renames",
    "--src-prefix=a/", "--dst-prefix=b/",
)  # fmt: skip
_BINARY_LINE = re.compile(rb"^Binary files .* differ$", re.MULTILINE)


@dataclasses.dataclass
class Capture:
    """What :func:`capture` found.

    Attributes:
        record: JSON-serialisable facts, merged into the run record (``code``,
            ``environment``, ``user``).
        artifacts: Large facts for the ledger's artifact table, name → bytes (the diff,
            or its ``--stat`` when the diff is over the cap).
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


def _git_stream(cwd: Path, args: Sequence[str], keep: int) -> tuple[bytes | None, str, int]:
    """Run git, hashing its output as it comes and keeping it only while it fits ``keep``.

    Memory stays under ``keep`` bytes whatever git prints (a modified multi-GB text file
    makes a diff of that size), and git is stopped after :data:`_MAX_DIFF_READ` bytes or
    ``_GIT_TIMEOUT_S``.

    Returns:
        ``(output or None when over keep, sha256, size)``; the size is -1 when git failed
        and ``_MAX_DIFF_READ + 1`` when it was stopped for printing too much.
    """
    try:
        proc = subprocess.Popen(
            ["git", *args], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            env={**os.environ, "GIT_OPTIONAL_LOCKS": "0", "LC_ALL": "C"},
        )  # fmt: skip
    except OSError:
        return None, "", -1
    assert proc.stdout is not None
    timer = threading.Timer(_GIT_TIMEOUT_S, proc.kill)
    timer.start()
    digest, kept, size = hashlib.sha256(), bytearray(), 0
    try:
        while chunk := proc.stdout.read(1 << 20):
            digest.update(chunk)
            size += len(chunk)
            if size <= keep:
                kept += chunk
            elif kept:
                kept = bytearray()  # over the cap: keep nothing
            if size > _MAX_DIFF_READ:
                proc.kill()
                break
    finally:
        timer.cancel()
        proc.stdout.close()
        code = proc.wait()
    if size > _MAX_DIFF_READ:
        return None, "", _MAX_DIFF_READ + 1
    if code != 0:
        return None, "", -1
    return (bytes(kept) if size <= keep else None), digest.hexdigest(), size


def _git(cwd: Path, *args: str) -> str | None:
    out = _git_bytes(cwd, *args)
    return out.decode("utf-8", "replace").strip() if out is not None else None


def _split_binary(diff: bytes) -> tuple[bytes, list[str]]:
    """The diff without the sections of binary files, and those files' paths."""
    if not _BINARY_LINE.search(diff):
        return diff, []
    sections = re.split(rb"(?m)^(?=diff --git )", diff)
    kept, binary = [], []
    for section in sections:
        header = section.split(b"\n@@", 1)[0]
        if section.startswith(b"diff --git ") and _BINARY_LINE.search(header):
            first = section.split(b"\n", 1)[0].decode("utf-8", "replace")
            binary.append(first.rpartition(" b/")[2])
        else:
            kept.append(section)
    return b"".join(kept), binary


def _binary_facts(root: Path, paths: Sequence[str]) -> list[dict[str, Any]]:
    """Changed binary files: path, size and sha256 of the work-tree copy (no content).

    At most :data:`_MAX_LISTED` files, each hashed only when at most
    :data:`_MAX_HASHED_BYTES` and while the run's hashing budget (the same figure, in
    all) lasts: ``finish`` waits for the capture, so it must end soon.
    """
    budget = _MAX_HASHED_BYTES
    facts = []
    for relative in paths[:_MAX_LISTED]:
        found = _file_facts(root, relative, budget)
        if found.get("sha256"):
            budget -= int(found["size_bytes"])
        facts.append(found)
    return facts


def _file_facts(root: Path, relative: str, budget: int) -> dict[str, Any]:
    """One changed binary file: path, size and, within ``budget`` bytes, its sha256."""
    path = root / relative
    facts: dict[str, Any] = {"path": redact_text(relative)}
    try:
        size = path.stat().st_size
    except OSError:
        return {**facts, "deleted": True}
    facts["size_bytes"] = size
    if size > budget or not path.is_file():
        facts["sha256"] = None
        limit = _MAX_HASHED_BYTES // 2**20
        facts["note"] = f"not hashed: over the {limit} MiB a run hashes"
        return facts
    try:
        with open(path, "rb") as f:
            facts["sha256"] = hashlib.file_digest(f, "sha256").hexdigest()
    except OSError as err:
        facts["sha256"] = None
        facts["note"] = f"not hashed: {err.strerror or err}"
    return facts


def git_info(
    cwd: Path, *, diff: bool = True, diff_max_bytes: int = DIFF_MAX_BYTES
) -> tuple[dict[str, Any], dict[str, bytes]]:
    """The git state of the work tree at ``cwd`` and its uncommitted diff, ready to store.

    Args:
        cwd: Where git is asked.
        diff: Store the diff (False: only the dirty flag is recorded).
        diff_max_bytes: Text diffs larger than this are kept as a hash and ``--stat``.

    Returns:
        ``(info, artifacts)``: ``info`` has ``commit``, ``branch``, ``remote``
        (credentials removed), ``dirty`` (tracked files differ from ``HEAD``, staged or
        not), ``root``, ``diff`` and ``untracked`` (names only, never contents).
        ``info["diff"]`` says what was kept: ``sha256`` and ``size_bytes`` of the text
        diff as stored (secrets redacted: ``redactions`` counts them; over the cap, as
        git printed it, since it is not stored), ``files``,
        ``binary`` (changed binary files: path, size, sha256, never their content),
        ``stored`` and, when not stored, ``reason``. ``artifacts`` holds
        :data:`DIFF_ARTIFACT` (the text diff) or :data:`DIFF_STAT_ARTIFACT`. The
        ``.wattwise/`` folder is never part of the status or the diff. Outside a
        repository: ``({"available": False, "reason": ...}, {})``.
    """
    head = _git(cwd, "rev-parse", "HEAD", "--abbrev-ref", "HEAD", "--show-toplevel")
    if head is None or len(head.splitlines()) != 3:
        reason = "not a git work tree, no commit yet, or git is missing"
        return {"available": False, "reason": reason}, {}
    commit, branch, root = head.splitlines()
    status = _git(cwd, "status", "--porcelain", "--untracked-files=normal", "--", *PATHSPEC)
    lines = status.splitlines() if status is not None else []
    untracked = [
        redact_text(line[3:])
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
    if dirty is None:  # a modified multi-GB file can keep git status past its time limit
        info["diff"] = {"stored": False, "reason": "git status failed or took too long"}
        return info, {}
    if not dirty:
        return info, {}
    if not diff:
        info["diff"] = {"stored": False, "reason": "diff capture was switched off (--no-diff)"}
        return info, {}
    raw, raw_sha256, raw_size = _git_stream(cwd, [*DIFF_ARGS, "--", *PATHSPEC], diff_max_bytes)
    if raw_size < 0:
        info["diff"] = {"stored": False, "reason": "git diff failed or took too long"}
        return info, {}
    if raw is not None:  # within the cap: text only, secrets redacted, stored
        text, binary_paths = _split_binary(raw)
        text, redactions = redact_bytes(text)
        binary = _binary_facts(Path(root), binary_paths)
        found: dict[str, Any] = {
            "sha256": hashlib.sha256(text).hexdigest(),
            "size_bytes": len(text),
            "files": len(re.findall(rb"(?m)^diff --git ", text)),
            "binary": binary,
            "binary_count": len(binary_paths),
            "redactions": redactions,
            "artifact": DIFF_ARTIFACT if text else None,  # None: binary changes only
            "stored": True,
        }
        info["diff"] = found
        return info, ({DIFF_ARTIFACT: text} if text else {})
    # Over the cap: never kept in memory nor scanned; its hash, size and --stat are kept.
    over = raw_size > _MAX_DIFF_READ
    found = {
        "sha256": None if over else raw_sha256,
        "size_bytes": None if over else raw_size,
        "artifact": None,
        "stored": False,
        "reason": (
            f"larger than the {diff_max_bytes:,} byte cap (diff_max_bytes)"
            + (f"; not read past {_MAX_DIFF_READ // 2**20} MiB" if over else "")
            + "; kept as its sha256 and 'git diff --stat'"
        ),
    }
    info["diff"] = found
    stat = _git_bytes(cwd, "diff", "HEAD", "--stat=200", "--no-color", "--", *PATHSPEC)
    if not stat:
        return info, {}
    stat, _ = redact_bytes(stat[:_MAX_STAT_BYTES])
    found["stat_artifact"] = DIFF_STAT_ARTIFACT
    return info, {DIFF_STAT_ARTIFACT: stat}


def script_info(argv: Sequence[str], cwd: Path) -> dict[str, Any] | None:
    """The entry-point script of ``argv`` (first ``.py`` argument that is a file) and its hash;
    for a run in a notebook, the notebook (``.ipynb``) as last saved."""
    for arg in argv[:3]:
        if not arg.endswith((".py", ".ipynb")):
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


#: The last package listing per import path, and the state of the folders it was read from.
_listings: dict[tuple[str, ...], tuple[tuple[tuple[str, int], ...], dict[str, str]]] = {}
_listings_lock = threading.Lock()
_SETTLED_NS = 3_000_000_000


def _stamp(path: str) -> int:
    """When ``path`` last changed (ns), -1 when it is not there."""
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return -1


def packages(paths: Sequence[str] | None = None) -> dict[str, str]:
    """Installed distributions, canonical name → version, from package metadata (no pip).

    Args:
        paths: The import path to read (default: this interpreter's ``sys.path``); the
            path of another interpreter gives that interpreter's distributions.

    Fast path: a ``name-version.dist-info`` folder names both (wheel spec), so its
    METADATA file is not parsed; other layouts (``.egg-info``) are read with
    ``importlib.metadata``. The first one on the path wins, as for imports.

    The listing is read again only when a folder on the path (or an ``.egg-info``
    folder or file read for it) has changed since the last listing of the same path:
    installing, upgrading or removing a distribution changes its folder, so every run
    still records the distributions installed when it ran, for the cost of a few
    ``stat`` calls instead of a scan that cost a short run more than its own work.
    """
    entries = tuple(sys.path if paths is None else paths)
    with _listings_lock:
        cached = _listings.get(entries)
    if cached is not None and all(_stamp(path) == stamp for path, stamp in cached[0]):
        return dict(cached[1])
    found: dict[str, str] = {}
    seen: set[str] = set()
    stamps: list[tuple[str, int]] = []
    for entry in entries:
        folder = entry or "."
        if folder in seen:
            continue
        seen.add(folder)
        stamps.append((folder, _stamp(folder)))
        if not os.path.isdir(folder):
            continue
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
            where = os.path.join(folder, item)
            stamps += [(where, _stamp(where)), *_egg_files(where)]
            dist = metadata.Distribution.at(where)
            name = dist.metadata["Name"] if dist.metadata is not None else None
            if name:
                found.setdefault(canonical_name(name), dist.version)
    listing = dict(sorted(found.items()))
    # A folder changed within the last seconds may change again within its file system's
    # time resolution (a second or two on some) without a new stamp: not kept then.
    settled = time.time_ns() - _SETTLED_NS
    if all(stamp < settled for _, stamp in stamps):
        with _listings_lock:
            if len(_listings) >= 8:  # other interpreters' paths: keep a few
                _listings.clear()
            _listings[entries] = (tuple(stamps), listing)
    return dict(listing)


def _egg_files(where: str) -> list[tuple[str, int]]:
    """The metadata files of an ``.egg-info`` folder and their stamps (a reinstall in
    place rewrites them without touching the folder that holds it)."""
    if not os.path.isdir(where):
        return []
    return [(path, _stamp(path)) for path in
            (os.path.join(where, "PKG-INFO"), os.path.join(where, "METADATA"))]  # fmt: skip


def _this_python() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "executable": sys.executable,
    }


def _this_os() -> dict[str, Any]:
    uname = platform.uname()
    return {
        "os": uname.system,
        "kernel": uname.release,
        "machine": uname.machine,
        "platform": platform.platform(),
    }


def python_and_os() -> dict[str, Any]:
    """Interpreter (this process's) and operating-system facts."""
    return {**_this_python(), **_this_os()}


def _is_own_command_line(argv: Sequence[str]) -> bool:
    words = [str(a) for a in argv]
    return words == list(sys.argv) or words == redact_argv(sys.argv)


def job_environment(
    argv: Sequence[str], cwd: Path, *, command: bool, environ: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """The interpreter that runs the job, its version and its distributions.

    Args:
        argv: The job's command line.
        cwd: Its working directory.
        command: True for a ``wattwise run -- CMD`` job (a child process, resolved from
            ``argv``); False when the job is this process (``track()``, decorators).
        environ: The job's variables (default: this process's, which the job inherits).

    Returns:
        ``python``, ``implementation``, ``executable`` and ``packages`` of the job's
        interpreter (absent when the job is not Python, or its interpreter could not be
        asked), and ``interpreter``: ``kind`` (``python``, ``other``, ``unknown``), how
        it was found, and a ``note`` when there is no package list. ``wattwise_python``
        names wattwise's own interpreter when the job's is another.
    """
    if not command:
        return {**_this_python(), "packages": packages(),
                "interpreter": {"kind": "python", "executable": sys.executable,
                                "how": "this process"}}  # fmt: skip
    found = resolve(argv, cwd, environ)
    own = {"python": platform.python_version(), "executable": sys.executable}
    if found["kind"] != "python":
        what = "not a Python interpreter" if found["kind"] == "other" else "not resolved"
        found["note"] = f"the job's program is {what}: no Python version or package list"
        return {"interpreter": found, "wattwise_python": own}
    executable = str(found["executable"])
    if is_this_interpreter(executable):
        return {**_this_python(), "packages": packages(), "interpreter": found}
    asked = query(executable, cwd, environ)
    if asked is None:
        found["note"] = f"{executable} did not answer a version query: no package list"
        return {"interpreter": found, "wattwise_python": own}
    return {
        "python": str(asked.get("version")),
        "implementation": str(asked.get("implementation", "")).replace("cpython", "CPython"),
        "executable": executable,
        "packages": packages([str(p) for p in asked["path"]]),
        "interpreter": {**found, "prefix": asked.get("prefix")},
        "wattwise_python": own,
    }


def capture(
    cwd: Path,
    argv: Sequence[str] = (),
    *,
    diff: bool = True,
    diff_max_bytes: int = DIFF_MAX_BYTES,
    command: bool | None = None,
) -> Capture:
    """Everything a run records about its code and environment, secrets redacted.

    Args:
        cwd: The run's working directory (git is asked there).
        argv: The run's command line, to find its interpreter and hash its script.
        diff: Store the uncommitted diff (``wattwise run --no-diff``: False).
        diff_max_bytes: A text diff larger than this is kept as its hash and ``--stat``.
        command: Whether ``argv`` is a child command (``wattwise run -- CMD``) whose
            interpreter must be found, or this process's own command line. None: a
            command unless ``argv`` is this process's ``sys.argv`` (redacted or not).

    Returns:
        The record part (``code``, ``environment`` with the job's interpreter and
        packages and ``variables`` from the allow-list, ``user``) and the artifacts
        (the diff when dirty, or its ``--stat`` when over the cap).
    """
    argv = [str(word) for word in argv]
    code, artifacts = git_info(cwd, diff=diff, diff_max_bytes=diff_max_bytes)
    script = script_info(argv, cwd)
    if script is not None:
        code["script"] = script
    is_command = not _is_own_command_line(argv) if command is None else command
    record = {
        "code": code,
        "environment": {
            **job_environment(argv, cwd, command=is_command and bool(argv)),
            **_this_os(),
            "variables": allowed_variables(),
        },
        "user": os.environ.get("USER") or os.environ.get("USERNAME"),
    }
    return Capture(record=record, artifacts=artifacts)

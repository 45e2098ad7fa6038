"""The interpreter that actually runs a command's job, and its installed distributions.

``wattwise run -- CMD`` may be installed in its own environment (pipx, a tools venv)
while ``CMD`` runs another Python: the record must describe the job's. The command is
resolved as the operating system would: ``argv[0]`` on the job's ``PATH`` (or relative to
its working directory when it holds a ``/``), through ``env`` and similar wrappers, and a
script's shebang (``#!/usr/bin/env python3``, ``#!/opt/venv/bin/python``, pip's
``/bin/sh`` trampoline for long paths). When that lands on a Python interpreter, its
version and ``sys.path`` come from one tiny query of that interpreter (``-c`` with
``sys`` and ``json`` only: about 20 ms, on the capture's background thread), and its
distributions are read from the ``*.dist-info`` folders on that path, as for imports:
no pip, nothing imported from the job's environment into wattwise's. The query, not a
guess from ``pyvenv.cfg``, because only the interpreter knows its ``.pth`` files,
``PYTHONPATH``, user site and distribution-specific layouts (``dist-packages``).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

_QUERY_TIMEOUT_S = 10.0
_PYTHON_NAME = re.compile(r"^(?:python|pypy)(?:\d+(?:\.\d+)?)?[a-z]?(?:\.exe)?$")
#: Wrappers that run the rest of the command line unchanged (``env A=1 python x.py``).
_WRAPPERS = frozenset({"env", "nohup", "nice", "time", "stdbuf", "ionice", "chrt", "setsid"})
#: Launchers that pick their own environment: the interpreter is theirs to choose.
_LAUNCHERS = {
    "uv": "run", "poetry": "run", "pipenv": "run", "conda": "run", "mamba": "run",
    "micromamba": "run", "pdm": "run", "hatch": "run", "rye": "run", "pixi": "run",
}  # fmt: skip
_QUERY = (
    "import sys, json; print(json.dumps({'version': '%d.%d.%d' % sys.version_info[:3], "
    "'implementation': sys.implementation.name, 'path': sys.path[1:], "
    "'prefix': sys.prefix, 'executable': sys.executable}))"
)


def is_python_name(name: str) -> bool:
    """Whether a program's file name is a Python interpreter's (``python3.11``, ``pypy3``)."""
    return bool(_PYTHON_NAME.match(os.path.basename(name)))


def _which(program: str, cwd: Path, environ: Mapping[str, str]) -> str | None:
    if "/" in program:
        path = Path(program) if os.path.isabs(program) else cwd / program
        return str(path) if path.is_file() else None
    return shutil.which(program, path=environ.get("PATH", os.defpath))


def _unwrap(argv: Sequence[str]) -> tuple[list[str], str | None]:
    """The command line without leading wrappers; or a reason it cannot be resolved."""
    words = list(argv)
    while words:
        name = os.path.basename(words[0])
        if name in _LAUNCHERS and len(words) > 1 and words[1] == _LAUNCHERS[name]:
            return words, f"'{name} {words[1]}' chooses the environment itself"
        if name not in _WRAPPERS:
            return words, None
        words = words[1:]
        while words and (words[0].startswith("-") or "=" in words[0] or words[0].isdigit()):
            words = words[1:]  # wrapper options, VAR=value, nice's -n 10
    return words, "no program after the wrappers"


def _shebang(path: str) -> list[str] | None:
    """The interpreter words of a script's ``#!`` line (pip's sh trampoline understood)."""
    if not os.path.isfile(path):  # never open a FIFO or a device: it could block
        return None
    try:
        with open(path, "rb") as f:
            head = f.read(1024)
    except OSError:
        return None
    if not head.startswith(b"#!"):
        return None
    lines = head[2:].decode("utf-8", "replace").splitlines()
    words = lines[0].split() if lines else []
    if words and os.path.basename(words[0]) in ("sh", "bash") and len(lines) > 1:
        # pip's launcher when the interpreter path is too long or has spaces:
        # '''exec' "/long path/bin/python" "$0" "$@"
        found = re.match(r"'''exec' \"?([^\"]+?)\"? \"\$0\"", lines[1])
        if found:
            return [found.group(1)]
    return words or None


def resolve(
    argv: Sequence[str], cwd: Path, environ: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """Which program runs ``argv``, and whether it is a Python interpreter.

    Returns:
        ``{"kind": "python", "executable": path, "how": ...}`` when the job runs on
        Python (directly, through a wrapper, or through a script's shebang);
        ``{"kind": "other", "program": ..., "how": ...}`` for any other program;
        ``{"kind": "unknown", "reason": ...}`` when it cannot be told (not found, a
        launcher such as ``uv run`` that picks its own environment).
    """
    env = os.environ if environ is None else environ
    words, reason = _unwrap(argv)
    if reason is not None:
        return {"kind": "unknown", "reason": reason}
    program = _which(words[0], cwd, env)
    if program is None:
        return {"kind": "unknown", "reason": f"{words[0]!r} was not found on the job's PATH"}
    if is_python_name(program):
        return {"kind": "python", "executable": program, "how": f"{words[0]} on PATH"}
    interpreter = _shebang(program)
    if interpreter is None:
        return {"kind": "other", "program": program, "how": "an executable, not a script"}
    first, rest = interpreter[0], interpreter[1:]
    if os.path.basename(first) == "env":
        names = [w for w in rest if not w.startswith("-") and "=" not in w]
        if not names:
            return {"kind": "unknown", "reason": f"the shebang of {program} names no program"}
        first = names[0]
        found = _which(first, cwd, env)
    else:
        found = first if os.path.isfile(first) else None
    how = f"shebang of {program}"
    if found is None:
        return {"kind": "unknown", "reason": f"{first!r} from the {how} was not found"}
    if is_python_name(found):
        return {"kind": "python", "executable": found, "how": how}
    return {"kind": "other", "program": found, "how": how}


def is_this_interpreter(executable: str) -> bool:
    """Whether ``executable`` is the interpreter running wattwise (same path, same prefix).

    A venv's ``python`` is a link to the base interpreter, so paths are compared
    unresolved: only the same file name in the same folder is the same environment.
    """
    return os.path.abspath(executable) == os.path.abspath(sys.executable)


def query(
    executable: str, cwd: Path, environ: Mapping[str, str] | None = None
) -> dict[str, Any] | None:
    """Version, implementation and ``sys.path`` of an interpreter, asked once; None on failure."""
    try:
        out = subprocess.run(
            [executable, "-c", _QUERY], cwd=cwd, capture_output=True, text=True,
            timeout=_QUERY_TIMEOUT_S, check=False,
            env=dict(os.environ if environ is None else environ),
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError, ValueError):
        return None
    if out.returncode != 0:
        return None
    try:
        found = json.loads(out.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return None
    return found if isinstance(found, dict) and isinstance(found.get("path"), list) else None

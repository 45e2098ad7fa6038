"""A command run's default name: the script or module it runs, not its interpreter.

``wattwise run -- python train.py`` is named ``train.py``, ``python -m pkg.train``
``pkg.train``, ``torchrun --nproc-per-node 2 train.py`` ``train.py``, ``jupyter nbconvert
--execute a.ipynb`` ``a.ipynb``; ``--name`` always wins. The command line is read, never
run: a launcher's options whose values are separate words cannot all be told from its
script, so the first ``.py`` argument is taken as the script, and a command whose shape is
not known here is named after its program.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import PurePath

#: ``python``, ``python3``, ``python3.12``, ``python3.13t``, ``pypy3``, ``python.exe``.
_PYTHON = re.compile(r"^(python|pypy)(\d+(\.\d+)*)?[dmtu]*(\.exe)?$", re.IGNORECASE)

#: Shells whose first argument that is not an option is the script they run.
_SHELLS = frozenset({"sh", "bash", "zsh", "dash", "ksh", "fish"})

#: Programs and modules that start a Python script or module on other processes or nodes.
_LAUNCHERS = frozenset({"torchrun", "deepspeed", "horovodrun", "mpirun", "mpiexec", "srun"})
_LAUNCHER_MODULES = frozenset({
    "torch.distributed.run", "torch.distributed.launch", "accelerate.commands.launch",
    "deepspeed.launcher.runner",
})  # fmt: skip

#: Tools whose ``run`` verb runs a command in a project's environment.
_RUNNERS = frozenset({"uv", "poetry", "pipenv", "pdm", "hatch", "conda", "mamba", "micromamba"})

#: ``python`` options that take a value (``-W error``, ``-X dev``).
_PYTHON_VALUED = frozenset("WX")

#: Options of the wrappers that take a value (``env -u NAME``, ``nice -n 5``).
_VALUED = {
    "env": ("-u", "-C", "-S", "--unset", "--chdir", "--split-string"),
    "nice": ("-n", "--adjustment"),
    "stdbuf": ("-i", "-o", "-e"),
}

#: A dotted module name (``pkg.train``).
_MODULE = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")


def command_name(argv: Sequence[str]) -> str:
    """The name a run of ``argv`` gets when none is given.

    Args:
        argv: The command and its arguments (not empty).

    Returns:
        The script's file name (``train.py``), the module (``pkg.train``), ``python -c``
        for inline code, or the program's file name when nothing better is known.
    """
    words = [str(w) for w in argv]
    if not words:
        return "run"
    return _name(words, depth=0) or _program(words[0])


def _program(word: str) -> str:
    return PurePath(word).name or word


def _name(words: list[str], depth: int) -> str | None:
    """The name of ``words``, or None when its shape is not known here."""
    if not words or depth > 4:  # wrappers of wrappers: stop, the program is named
        return None
    program = _program(words[0])
    rest = words[1:]
    if _PYTHON.match(program):
        return _python(program, rest, depth)
    if program in _SHELLS:
        return _shell(program, rest)
    if program in _LAUNCHERS:
        return _launched(rest, depth)
    if program == "accelerate" and rest[:1] == ["launch"]:
        return _launched(rest[1:], depth)
    if program in ("jupyter", "papermill"):  # jupyter nbconvert --execute x.ipynb
        notebooks = [w for w in rest if w.endswith(".ipynb") and not w.startswith("-")]
        return _program(notebooks[0]) if notebooks else None
    if program in _RUNNERS and rest[:1] == ["run"]:
        return _launched(rest[1:], depth, first_word=True)
    if program in ("env", "nohup", "time", "nice", "stdbuf", "exec"):
        return _name(_after_wrapper(program, rest), depth + 1)
    return None


def _python(program: str, args: list[str], depth: int) -> str:
    """``python [OPTIONS] (SCRIPT | -m MODULE | -c CODE) ...``."""
    i = 0
    while i < len(args):
        word = args[i]
        if word == "--":
            i += 1
            break
        if not word.startswith("-") or word == "-":
            break
        if word.startswith("--"):  # --check-hash-based-pycs MODE; --help, --version
            i += 2 if word == "--check-hash-based-pycs" else 1
            continue
        for j, flag in enumerate(word[1:], start=1):
            attached = word[j + 1 :]
            if flag in "mc":
                value = attached or (args[i + 1] if i + 1 < len(args) else "")
                tail = args[i + 1 :] if attached else args[i + 2 :]
                if flag == "c":
                    return f"{program} -c"
                if value in _LAUNCHER_MODULES:
                    return _launched(tail, depth) or value
                return value or program
            if flag in _PYTHON_VALUED:
                i += 0 if attached else 1  # the value is the next word
                break
        i += 1
    if i >= len(args):
        return program
    script = args[i]
    return f"{program} -" if script == "-" else _program(script)


def _shell(program: str, args: list[str]) -> str:
    """``bash [OPTIONS] SCRIPT ...``; ``bash -c CODE`` is ``bash -c``."""
    for word in args:
        if word == "-c" or (word.startswith("-") and not word.startswith("--") and "c" in word):
            return f"{program} -c"
        if not word.startswith("-"):
            return _program(word)
    return program


def _launched(args: list[str], depth: int, *, first_word: bool = False) -> str | None:
    """What a launcher (``torchrun``, ``uv run``) starts: a Python command line, the first
    ``.py`` argument, the module after ``-m``/``--module``; for a runner (``first_word``),
    else its first word that is not an option."""
    module_next = False
    for i, word in enumerate(args):
        if _PYTHON.match(_program(word)):
            return _name(args[i:], depth + 1)
        if word.endswith(".py") and not word.startswith("-"):
            return _program(word)
        if word in ("-m", "--module"):
            module_next = True
        elif module_next and _MODULE.match(word):
            return word
    if first_word:
        for i, word in enumerate(args):
            if not word.startswith("-"):
                return _name(args[i:], depth + 1) or _program(word)
    return None


def _after_wrapper(program: str, args: list[str]) -> list[str]:
    """The command a wrapper (``env A=1``, ``nohup``, ``nice -n 5``) runs."""
    valued = _VALUED.get(program, ())
    i = 0
    while i < len(args):
        word = args[i]
        if word == "--":
            return args[i + 1 :]
        if word in valued:
            i += 2
        elif word.startswith("-") or (program == "env" and "=" in word):
            i += 1
        else:
            break
    return args[i:]

"""Which notebook a Jupyter kernel runs, for the record of a run started in it.

A kernel's own command line (``ipykernel_launcher.py -f /tmp/kernel-….json``) names a
connection file that is gone when the kernel is, so it says nothing about the work. The
notebook is named instead, from what the front end tells the kernel, in this order:

* ``__vsc_ipynb_file__`` in the user's namespace (VS Code: the notebook's full path);
* ``__session__`` in the user's namespace (ipykernel sets it from the next one);
* ``JPY_SESSION_NAME`` in the environment (set by Jupyter Server for the kernels it
  starts: the notebook's path, absolute or relative to the server's root folder).

A relative path is looked for from the kernel's working folder upwards (a kernel starts in
the notebook's folder; the server's root is one of its parents). When none of them is
there (``nbclient``, papermill, an old server), the notebook is ``notebook (unknown
path)`` and the record says why. Nothing here imports IPython: it is asked only when it
is already loaded.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path, PurePath
from typing import Any

#: What a run started in a notebook whose path is unknown records as its command.
UNKNOWN_NOTEBOOK = "notebook (unknown path)"

_SOURCES = ("__vsc_ipynb_file__", "__session__")


def _shell() -> Any:
    """The running IPython shell, if IPython is loaded and one runs; never imports it."""
    ipython = sys.modules.get("IPython")
    get = getattr(ipython, "get_ipython", None)
    try:
        return get() if get is not None else None
    except Exception:  # an IPython half torn down at exit
        return None


def in_kernel(argv: list[str] | None = None) -> bool:
    """True when this process is a Jupyter kernel (ipykernel), not a script or a terminal."""
    words = list(sys.argv if argv is None else argv)
    first = PurePath(words[0]) if words else PurePath()
    if first.name == "ipykernel_launcher.py" or first.parent.name == "ipykernel":
        return True
    shell = _shell()
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


def notebook(
    *, argv: list[str] | None = None, user_ns: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None, cwd: Path | None = None,
) -> dict[str, Any] | None:  # fmt: skip
    """The notebook this kernel runs, or None when this process is not a kernel.

    Args:
        argv: The process's command line (default ``sys.argv``).
        user_ns: The user's namespace (default: the running shell's).
        environ: The environment (default ``os.environ``).
        cwd: The kernel's working folder (default: the current one).

    Returns:
        ``path`` (absolute when found on disk, else as given; None when unknown),
        ``name`` (its file name, or :data:`UNKNOWN_NOTEBOOK`), ``how`` (where the path
        came from, or None), ``kernel_argv`` (the kernel's own command line) and, when
        the path is unknown or was not found on disk, a ``note`` saying so.
    """
    words = list(sys.argv if argv is None else argv)
    if not in_kernel(words) and user_ns is None:
        return None
    if user_ns is None:
        shell = _shell()
        user_ns = getattr(shell, "user_ns", None) or {}
    env = os.environ if environ is None else environ
    here = Path.cwd() if cwd is None else cwd
    found: dict[str, Any] = {"path": None, "name": UNKNOWN_NOTEBOOK, "how": None,
                             "kernel_argv": words}  # fmt: skip
    for how, value in [*((k, user_ns.get(k)) for k in _SOURCES),
                       ("JPY_SESSION_NAME", env.get("JPY_SESSION_NAME"))]:  # fmt: skip
        if not isinstance(value, str) or not value.strip():
            continue
        path = _on_disk(value, here)
        if path is None and not value.endswith(".ipynb"):
            continue  # a console's or a bare kernel's session name, not a notebook
        found.update(path=str(path or value), name=PurePath(value).name, how=how)
        if path is None:
            found["note"] = (f"{how} names {value!r}, not found from {here}: a path relative "
                             "to the Jupyter server's root folder")  # fmt: skip
        return found
    found["note"] = (
        "the kernel was not told which notebook it runs (no __vsc_ipynb_file__, __session__ "
        "or JPY_SESSION_NAME: nbclient, papermill or an older Jupyter); pass a name to "
        "wattwise.track() or %%wattwise to tell runs apart"
    )
    return found


def _on_disk(value: str, cwd: Path) -> Path | None:
    """``value`` as an existing file: absolute, or relative to ``cwd`` or one of its parents."""
    given = Path(value).expanduser()
    candidates = [given] if given.is_absolute() else [p / given for p in (cwd, *cwd.parents)]
    for candidate in candidates:
        try:
            if candidate.is_file():
                return candidate.resolve()
        except OSError:
            continue
    return None

"""The runs still open in this process, and the hooks that end them at exit.

A run registers itself when it starts and leaves when it finishes. At exit (``atexit``), a
run still open (a Trainer that raised, a forgotten ``finish()``) is finished ``failed``
with the uncaught exception, if any, so the energy it measured is kept.
"""

from __future__ import annotations

import atexit
import logging
import sys
import weakref
from typing import TYPE_CHECKING, Any

from wattwise.store import RunStatus
from wattwise.tracking import _observe
from wattwise.tracking._state import RunState

if TYPE_CHECKING:
    from wattwise.tracking._run import Run

logger = logging.getLogger("wattwise")

_open_runs: weakref.WeakSet[Run] = weakref.WeakSet()
_exit_state: dict[str, Any] = {"installed": False, "uncaught": None}


def register(run: Run) -> None:
    """A run has started: finish it at exit if it is still open then; tell the observers."""
    _open_runs.add(run)
    _install_exit_hooks()
    _observe.run_started(run)


def unregister(run: Run) -> None:
    """A run has ended (or is ending): nothing to do for it at exit."""
    _open_runs.discard(run)


def _install_exit_hooks() -> None:
    """Once per process: remember an uncaught exception; finish open runs at exit."""
    if _exit_state["installed"]:
        return
    _exit_state["installed"] = True
    previous = sys.excepthook

    def excepthook(kind: type[BaseException], exc: BaseException, tb: Any) -> None:
        _exit_state["uncaught"] = f"{kind.__name__}: {exc}"[:500]
        previous(kind, exc, tb)

    sys.excepthook = excepthook
    atexit.register(finish_open_runs)


def finish_open_runs() -> None:
    """At exit: a run still open (a Trainer that raised, a missing finish()) ends failed."""
    uncaught = _exit_state["uncaught"]
    for run in list(_open_runs):
        if run.state is not RunState.RUNNING:
            continue
        why = f"the process exited with the run still open ({uncaught or 'no finish()'})"
        try:
            run.finish(RunStatus.FAILED, error=why[:500])
        except Exception as err:  # at exit there is nobody left to tell but the log
            logger.warning("wattwise: could not finish run %s at exit: %s", run.id[:8], err)
    _observe.process_exiting()  # after the runs' ends: observers finish their queued work

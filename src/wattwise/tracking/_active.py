"""The active run: the innermost ``track`` block (or run started by ``start()``), else the
``wattwise run`` parent's run.

A run made current by ``with`` is current in that context only (threads and asyncio tasks
each have their own). A run started by ``run.start()`` (a notebook, a script without a
block) is also current process-wide, in every thread and later notebook cell, until
``run.stop()``/``finish()``: a callback or ``wattwise.log()`` anywhere then finds it.

Everything that records into "the run this code runs under" (``wattwise.log``,
``use_data``, ``seed_everything``, the cache's hit booking, a nested run's parent id) asks
:func:`active_run` once, instead of each looking at the context and at
``WATTWISE_RUN_ID``/``WATTWISE_STORE`` in its own way.
"""

from __future__ import annotations

import contextvars
import logging
import os
import threading
import time
from typing import TYPE_CHECKING, Any

from wattwise.exceptions import InvalidParameterError, RunStateError
from wattwise.tracking._child import ChildLogger
from wattwise.tracking._state import RunState
from wattwise.tracking._writer import strict_from_env

if TYPE_CHECKING:
    from wattwise.store import BaseRunStore
    from wattwise.tracking._run import Run

logger = logging.getLogger("wattwise")

#: The run of the innermost ``track`` block in this context.
current: contextvars.ContextVar[Run | None] = contextvars.ContextVar("wattwise_run", default=None)

_loggers: dict[tuple[str, str | None], ChildLogger] = {}
_loggers_lock = threading.Lock()

#: Runs started by ``run.start()`` and not yet finished, oldest first (process-wide).
_started: list[Run] = []
_started_lock = threading.Lock()


def push_started(run: Run) -> None:
    """``run.start()``: make ``run`` current process-wide (the newest started wins)."""
    with _started_lock:
        if run not in _started:
            _started.append(run)


def drop_started(run: Run) -> None:
    """``run.finish()``: ``run`` is no longer current anywhere."""
    with _started_lock:
        if run in _started:
            _started.remove(run)


def _running(run: Run | None) -> Run | None:
    return run if run is not None and run.state is RunState.RUNNING else None


class ParentRun:
    """A handle on the run of the ``wattwise run`` command this process runs under.

    Built from ``WATTWISE_RUN_ID`` and ``WATTWISE_STORE`` (the ledger's URL or path), which
    ``wattwise run`` sets for its command. It writes into that run through the ledger (or a
    spool merged later); no failure of the ledger reaches the caller unless strict
    (``WATTWISE_STRICT=1``).

    Attributes:
        id: The parent run's id.
        store_url: The ledger it lives in (None: the project's default ledger).
        strict: Let ledger failures raise.
    """

    def __init__(self, run_id: str, store_url: str | None, *, strict: bool | None = None) -> None:
        self.id = run_id
        self.store_url = store_url or None
        self.strict = strict_from_env(strict)

    def __repr__(self) -> str:
        return f"ParentRun({self.id[:8]!r})"

    def open_store(self) -> BaseRunStore:
        """Open the ledger the parent run is in (the caller closes it)."""
        from wattwise.store import open_store

        return open_store(self.store_url)

    def log(self, step: int | None = None, **metrics: float) -> None:
        """Record metric values in the parent run (like :meth:`Run.log`).

        Raises:
            InvalidParameterError: A value is not a number.
        """
        self._writer().log(_points(step, metrics))

    def _writer(self) -> ChildLogger:
        """This process's writer into the parent run (one per process: it never hangs)."""
        key = (self.id, self.store_url)
        with _loggers_lock:
            child = _loggers.get(key)
            if child is None:
                _loggers.clear()  # one parent per process: drop a stale handle
                child = _loggers[key] = ChildLogger(self.id, self.store_url, strict=self.strict)
        return child

    def set_record(self, key: str, value: Any, *, append: bool = False) -> None:
        """Set (or append to a list at) a top-level field of the parent's record.

        Written by this process's writer thread: a ledger that hangs never hangs the job.
        """
        self._writer().annotate(key, value, append=append)

    def use_data(self, path_or_array: Any, *, name: str | None = None) -> dict[str, Any]:
        """Fingerprint data and append it to the parent's ``record["data"]``."""
        from wattwise.environment import fingerprint

        found = fingerprint(path_or_array, name=name)
        self.set_record("data", found, append=True)
        return found


def current_run() -> Run | None:
    """The run active here: the innermost ``track`` block of this context, else the newest
    run started by ``run.start()`` that is still running, else None."""
    run = _running(current.get())
    if run is not None:
        return run
    with _started_lock:
        started = list(_started)
    for candidate in reversed(started):
        if _running(candidate) is not None:
            return candidate
    return None


def active_run() -> Run | ParentRun | None:
    """The run this code runs under: the innermost ``track`` block's :class:`Run` (else the
    newest run started by ``run.start()``, see :func:`current_run`), else a
    :class:`ParentRun` handle on the ``wattwise run`` command's run (``WATTWISE_RUN_ID``),
    else None.

    Both kinds have ``id``, ``log(step, **metrics)``, ``set_record(key, value,
    append=False)`` and ``use_data(...)``.
    """
    run = current_run()
    if run is not None:
        return run
    run_id = os.environ.get("WATTWISE_RUN_ID")
    if not run_id:
        return None
    return ParentRun(run_id, os.environ.get("WATTWISE_STORE"))


def log(step: int | None = None, **metrics: float) -> None:
    """Log metrics to the active run, wherever it is.

    Inside a ``track`` block this is ``run.log``. In a program started by
    ``wattwise run`` it writes to that run through the ledger (or, when the ledger cannot
    be written, through a spool merged later), so a script can report its accuracy without
    managing a run of its own. Failures of the ledger never raise here unless strict
    (``WATTWISE_STRICT=1``).

    Raises:
        RunStateError: There is no run to log to.
        InvalidParameterError: A value is not a number.
    """
    run = active_run()
    if run is None:
        msg = (
            "No active run to log to. Call wattwise.log() inside 'with wattwise.track(...)', "
            "or start the program with 'wattwise run -- ...'."
        )
        raise RunStateError(msg)
    run.log(step, **metrics)


def use_data(path_or_array: Any, *, name: str | None = None) -> dict[str, Any]:
    """Fingerprint data and record it in the active run (``record["data"]``).

    Works inside ``wattwise.track`` (same as ``run.use_data``) and in a program started by
    ``wattwise run`` (written to that run through the ledger).

    Returns:
        The fingerprint (see :func:`wattwise.environment.fingerprint`).

    Raises:
        RunStateError: There is no run to record it in.
    """
    run = active_run()
    if run is None:
        msg = (
            "No active run to record the data in. Call use_data() inside "
            "'with wattwise.track(...)', or start the program with 'wattwise run -- ...'."
        )
        raise RunStateError(msg)
    return run.use_data(path_or_array, name=name)


def seed_everything(
    seed: int, *, deterministic: bool = False, warn_only: bool = True
) -> dict[str, Any]:
    """Seed Python's ``random``, NumPy and PyTorch (those already imported) and record it.

    The report is stored in the active run's record (``seeds`` and ``determinism_flags``):
    the run of the enclosing ``wattwise.track`` block, or the ``wattwise run`` command this
    program runs under; a run started later in this process records the latest report too.
    Arguments, result and errors: :func:`wattwise.environment.seed_generators`.
    """
    from wattwise.environment import seed_generators

    report = seed_generators(seed, deterministic=deterministic, warn_only=warn_only)
    run = active_run()
    if run is not None:
        run.set_record("seeds", report)
        run.set_record("determinism_flags", report["determinism_flags"])
    return report


#: One metric point: step, name, value, Unix time.
Point = tuple[int | None, str, float, float]


def _points(step: int | None, metrics: dict[str, Any]) -> list[Point]:
    """Metric points stamped now; a value that is not a number is refused."""
    now = time.time()
    points = []
    for key, value in metrics.items():
        try:
            points.append((step, key, float(value), now))
        except (TypeError, ValueError):
            msg = f"Metric {key!r} must be a number. Got {value!r} instead."
            raise InvalidParameterError(msg) from None
    return points

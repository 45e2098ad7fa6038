"""Who else follows a run as it goes: integrations told when a run starts, logs and ends.

Beside :mod:`wattwise.tracking._observe` (observers of every sample, for live power and
energy: Prometheus), followers hear a run's own events, each for one run: its start (with
its parent and study, to nest), every ``log`` (its steps) and its end (its result).

An integration follows runs only where what it serves is in use, and is loaded only then:
MLflow's (:mod:`wattwise.integrations.mlflow`) when this process has imported ``mlflow``
already, or with ``WATTWISE_MLFLOW=1``. Integrations sit above the runs, so they are named
here and imported on use, never at import time (``import wattwise`` stays light).

A follower is any object with ``started()``, ``logged(step, metrics)`` and ``ended()``.
Nothing a follower does reaches the run: a failure is said once (as the run's other
faults are) and the follower is dropped, unless the run is strict.
"""

from __future__ import annotations

import importlib
import os
import sys
import threading
import weakref
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from wattwise.tracking._run import Run


class Follower(Protocol):
    """What an integration gives back to follow one run."""

    def started(self) -> None:
        """The run has started."""

    def logged(self, step: int | None, metrics: Mapping[str, float]) -> None:
        """The run logged ``metrics`` at ``step``."""

    def ended(self) -> None:
        """The run is ending (its result follows)."""


def _mlflow_wanted() -> bool:
    flag = os.environ.get("WATTWISE_MLFLOW", "").strip()
    if flag == "0":
        return False
    return flag == "1" or "mlflow" in sys.modules


#: Integrations that follow runs: (module, factory name, whether it is wanted now).
FOLLOWERS: tuple[tuple[str, str, Callable[[], bool]], ...] = (
    ("wattwise.integrations.mlflow", "follow_run", _mlflow_wanted),
)

_following: weakref.WeakKeyDictionary[Run, list[Any]] = weakref.WeakKeyDictionary()
_lock = threading.Lock()


def _failed(run: Run, follower: Any, doing: str, err: Exception) -> None:
    if run.strict:
        raise err
    name = type(follower).__module__ if not isinstance(follower, str) else follower
    run._warn_once(f"follower:{name}", f"{name} failed while {doing} and stops following "
                   f"this run (the run goes on): {type(err).__name__}: {err}")  # fmt: skip
    with _lock:
        found = _following.get(run, [])
        if follower in found:
            found.remove(follower)


def run_started(run: Run) -> None:
    """Make the followers wanted now for ``run`` and tell them it started."""
    for module, factory, wanted in FOLLOWERS:
        if not wanted():
            continue
        try:
            follower = getattr(importlib.import_module(module), factory)(run)
        except Exception as err:
            _failed(run, module, "starting", err)
            continue
        if follower is None:
            continue
        with _lock:
            _following.setdefault(run, []).append(follower)
        try:
            follower.started()
        except Exception as err:
            _failed(run, follower, "starting", err)


def run_logged(run: Run, step: int | None, metrics: Mapping[str, float]) -> None:
    """Tell ``run``'s followers it logged ``metrics``."""
    with _lock:
        followers = list(_following.get(run, ()))
    for follower in followers:
        try:
            follower.logged(step, metrics)
        except Exception as err:
            _failed(run, follower, "logging", err)


def run_ended(run: Run) -> None:
    """Tell ``run``'s followers it is ending, and forget them."""
    with _lock:
        followers = _following.pop(run, [])
    for follower in followers:
        try:
            follower.ended()
        except Exception as err:
            _failed(run, follower, "ending", err)

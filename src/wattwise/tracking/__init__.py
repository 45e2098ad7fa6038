"""Runs: lifecycle, background sampling, attribution, metrics, ``wattwise run``.

* :func:`track` / :class:`Run`: one tracked piece of work; ``wattwise run`` is
  :func:`run_command`.
* :func:`active_run`: the run this code runs under (the innermost ``track`` block, else a
  :class:`ParentRun` handle on the ``wattwise run`` command's run); :func:`log`,
  :func:`use_data` and :func:`seed_everything` record into it.
* :class:`RunKind`: what a kind of run is for (its role in the footprint, written into the
  record) and how it is attributed (excluded components, a note, its :class:`ProcessTree`);
  workflows register theirs with :func:`register_run_kind`.
* :func:`add_run_observer`: a :class:`RunObserver` told of what every run does (its
  start, its logs, each sample as a :class:`LiveSample`, its end), one interface for every
  hook; ``wattwise.prometheus`` and ``wattwise.integrations.mlflow`` are such observers.
"""

from __future__ import annotations

from wattwise.tracking._active import (
    ParentRun,
    active_run,
    current_run,
    log,
    seed_everything,
    use_data,
)
from wattwise.tracking._capture import (
    HandedCapture,
    adopt_study_capture,
    hand_off_study_capture,
)
from wattwise.tracking._command import run_command
from wattwise.tracking._kind import RunKind, register_run_kind, run_kind
from wattwise.tracking._observe import (
    LiveComponent,
    LiveSample,
    RunObserver,
    add_run_observer,
    adopt_observers,
    hand_off_observers,
    remove_run_observer,
)
from wattwise.tracking._predict import (
    EnergyPrediction,
    conformal_quantile,
    predict_energy,
    relative_error,
)
from wattwise.tracking._proctree import ProcessTree
from wattwise.tracking._result import RunResult
from wattwise.tracking._run import Run, RunState, track
from wattwise.tracking._sampler import ATTRIBUTION
from wattwise.tracking._writer import strict_from_env

__all__ = [
    "ATTRIBUTION",
    "EnergyPrediction",
    "HandedCapture",
    "LiveComponent",
    "LiveSample",
    "ParentRun",
    "ProcessTree",
    "Run",
    "RunKind",
    "RunObserver",
    "RunResult",
    "RunState",
    "active_run",
    "add_run_observer",
    "adopt_observers",
    "adopt_study_capture",
    "conformal_quantile",
    "current_run",
    "hand_off_observers",
    "hand_off_study_capture",
    "log",
    "predict_energy",
    "register_run_kind",
    "relative_error",
    "remove_run_observer",
    "run_command",
    "run_kind",
    "seed_everything",
    "strict_from_env",
    "track",
    "use_data",
]

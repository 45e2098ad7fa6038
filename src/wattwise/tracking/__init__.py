"""Runs: lifecycle, background sampling, attribution, metrics, ``wattwise run``.

* :func:`track` / :class:`Run`: one tracked piece of work; ``wattwise run`` is
  :func:`run_command`.
* :func:`active_run`: the run this code runs under (the innermost ``track`` block, else a
  :class:`ParentRun` handle on the ``wattwise run`` command's run); :func:`log`,
  :func:`use_data` and :func:`seed_everything` record into it.
* :class:`RunKind`: what a kind of run is for (its role in the footprint, written into the
  record) and how it is attributed (excluded components, a note, its :class:`ProcessTree`);
  workflows register theirs with :func:`register_run_kind`.
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
from wattwise.tracking._command import run_command
from wattwise.tracking._kind import RunKind, register_run_kind, run_kind
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
    "ParentRun",
    "ProcessTree",
    "Run",
    "RunKind",
    "RunResult",
    "RunState",
    "active_run",
    "conformal_quantile",
    "current_run",
    "log",
    "predict_energy",
    "register_run_kind",
    "relative_error",
    "run_command",
    "run_kind",
    "seed_everything",
    "strict_from_env",
    "track",
    "use_data",
]

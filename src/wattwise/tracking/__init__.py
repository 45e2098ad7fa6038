"""Runs: lifecycle, background sampling, attribution, metrics, ``wattwise run``.

* :func:`track` / :class:`Run`: one tracked piece of work; ``wattwise run`` is
  :func:`run_command`.
* :func:`active_run`: the run this code runs under (the innermost ``track`` block, else a
  :class:`ParentRun` handle on the ``wattwise run`` command's run); :func:`log`,
  :func:`use_data` and :func:`seed_everything` record into it.
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
from wattwise.tracking._run import ATTRIBUTION, Run, RunResult, RunState, track
from wattwise.tracking._writer import strict_from_env

__all__ = [
    "ATTRIBUTION",
    "ParentRun",
    "Run",
    "RunResult",
    "RunState",
    "active_run",
    "current_run",
    "log",
    "run_command",
    "seed_everything",
    "strict_from_env",
    "track",
    "use_data",
]

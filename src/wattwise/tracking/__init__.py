"""Runs: lifecycle, background sampling, attribution, metrics, ``wattwise run``."""

from __future__ import annotations

from wattwise.tracking._command import run_command
from wattwise.tracking._run import ATTRIBUTION, Run, RunResult, RunState, current_run, log, track

__all__ = [
    "ATTRIBUTION",
    "Run",
    "RunResult",
    "RunState",
    "current_run",
    "log",
    "run_command",
    "track",
]

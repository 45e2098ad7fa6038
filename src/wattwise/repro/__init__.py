"""Reproducibility: what a run records to be repeated, and ``wattwise reproduce``.

* :func:`capture` (called by every run, on a background thread): command, git commit,
  branch, remote, dirty flag and diff (text only, capped, ``.wattwise/`` left out), the
  job's own interpreter and its installed distributions, OS, and the environment
  variables of an allow-list (:data:`ALLOWED_ENV_VARS`; never secrets).
* :func:`redact_argv` / :func:`redact_text`: secrets (option values, URL credentials,
  token formats) replaced by ``***`` before anything is written.
* :func:`seed_everything` seeds ``random``, NumPy and PyTorch and records what it set.
* :func:`fingerprint` / ``run.use_data(...)`` / :func:`use_data` record the data a run reads
  by content hash.
* :func:`reproduce` re-runs a recorded command at its commit with its diff, in a fresh
  worktree, and compares final metrics within a tolerance.

This package imports neither the tracking nor the store at import time (``reproduce``
creates runs, so it imports them when called).
"""

from __future__ import annotations

from wattwise.repro._capture import (
    DIFF_ARTIFACT,
    DIFF_MAX_BYTES,
    DIFF_STAT_ARTIFACT,
    Capture,
    capture,
    packages,
)
from wattwise.repro._compare import (
    Comparison,
    MetricDiff,
    Tolerance,
    Tolerances,
    compare_metrics,
    final_metrics,
)
from wattwise.repro._envvars import (
    ALLOWED_ENV_VARS,
    RESTORED_ON_REPRODUCE,
    allowed_variables,
    is_secret_name,
)
from wattwise.repro._fingerprint import fingerprint, use_data
from wattwise.repro._interpreter import resolve as resolve_interpreter
from wattwise.repro._redact import REDACTED, redact_argv, redact_text, redact_url
from wattwise.repro._reproduce import (
    PackageDrift,
    ReproducePlan,
    ReproduceResult,
    checkout,
    execute,
    package_drift,
    prepare,
    reproduce,
)
from wattwise.repro._seeds import determinism_flags, last_seeds, seed_everything

__all__ = [
    "ALLOWED_ENV_VARS",
    "DIFF_ARTIFACT",
    "DIFF_MAX_BYTES",
    "DIFF_STAT_ARTIFACT",
    "REDACTED",
    "RESTORED_ON_REPRODUCE",
    "Capture",
    "Comparison",
    "MetricDiff",
    "PackageDrift",
    "ReproducePlan",
    "ReproduceResult",
    "Tolerance",
    "Tolerances",
    "allowed_variables",
    "capture",
    "checkout",
    "compare_metrics",
    "determinism_flags",
    "execute",
    "final_metrics",
    "fingerprint",
    "is_secret_name",
    "last_seeds",
    "package_drift",
    "packages",
    "prepare",
    "redact_argv",
    "redact_text",
    "redact_url",
    "reproduce",
    "resolve_interpreter",
    "seed_everything",
    "use_data",
]

"""Reproducibility: ``wattwise reproduce`` (a workflow above the runs), and the old home of
the environment capture.

:func:`reproduce` (:func:`prepare` then :func:`execute`) re-runs a recorded command at its
commit with its diff, in a fresh worktree, as a new run linked to the old one, and
compares final metrics within a tolerance (:func:`compare_metrics`).

What a run records to be repeated now lives in :mod:`wattwise.environment` (the facts
layer, which imports nothing from the runs); its names are still importable from here:

* :func:`capture` (called by every run, on a background thread): command, git commit,
  branch, remote, dirty flag and diff (text only, capped, ``.wattwise/`` left out), the
  job's own interpreter and its installed distributions, OS, and the environment
  variables of an allow-list (:data:`ALLOWED_ENV_VARS`; never secrets).
* :func:`redact_argv` / :func:`redact_text`: secrets (option values, URL credentials,
  token formats) replaced by ``***`` before anything is written.
* :func:`seed_everything` (``wattwise.tracking``) seeds ``random``, NumPy and PyTorch and
  records what it set in the active run.
* :func:`fingerprint` / ``run.use_data(...)`` / :func:`use_data` (``wattwise.tracking``)
  record the data a run reads by content hash.

Names load on first use (PEP 562): importing this package costs nothing until one is used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from wattwise import _lazy

if TYPE_CHECKING:
    from wattwise.environment import (
        ALLOWED_ENV_VARS,
        DIFF_ARTIFACT,
        DIFF_MAX_BYTES,
        DIFF_STAT_ARTIFACT,
        REDACTED,
        RESTORED_ON_REPRODUCE,
        Capture,
        allowed_variables,
        capture,
        determinism_flags,
        fingerprint,
        is_secret_name,
        last_seeds,
        packages,
        redact_argv,
        redact_text,
        redact_url,
        resolve_interpreter,
    )
    from wattwise.repro._compare import (
        Comparison,
        MetricDiff,
        Tolerance,
        Tolerances,
        compare_metrics,
        final_metrics,
    )
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
    from wattwise.tracking import seed_everything, use_data

#: Public name → (module, name there). The environment's names and the two recording
#: functions keep their old home here (``from wattwise.repro import capture`` still works).
_LAZY: _lazy.LazyTable = {
    "DIFF_ARTIFACT": ("wattwise.environment", "DIFF_ARTIFACT"),
    "DIFF_MAX_BYTES": ("wattwise.environment", "DIFF_MAX_BYTES"),
    "DIFF_STAT_ARTIFACT": ("wattwise.environment", "DIFF_STAT_ARTIFACT"),
    "Capture": ("wattwise.environment", "Capture"),
    "capture": ("wattwise.environment", "capture"),
    "packages": ("wattwise.environment", "packages"),
    "ALLOWED_ENV_VARS": ("wattwise.environment", "ALLOWED_ENV_VARS"),
    "RESTORED_ON_REPRODUCE": ("wattwise.environment", "RESTORED_ON_REPRODUCE"),
    "allowed_variables": ("wattwise.environment", "allowed_variables"),
    "is_secret_name": ("wattwise.environment", "is_secret_name"),
    "fingerprint": ("wattwise.environment", "fingerprint"),
    "resolve_interpreter": ("wattwise.environment", "resolve_interpreter"),
    "REDACTED": ("wattwise.environment", "REDACTED"),
    "redact_argv": ("wattwise.environment", "redact_argv"),
    "redact_text": ("wattwise.environment", "redact_text"),
    "redact_url": ("wattwise.environment", "redact_url"),
    "determinism_flags": ("wattwise.environment", "determinism_flags"),
    "last_seeds": ("wattwise.environment", "last_seeds"),
    "Comparison": ("wattwise.repro._compare", "Comparison"),
    "MetricDiff": ("wattwise.repro._compare", "MetricDiff"),
    "Tolerance": ("wattwise.repro._compare", "Tolerance"),
    "Tolerances": ("wattwise.repro._compare", "Tolerances"),
    "compare_metrics": ("wattwise.repro._compare", "compare_metrics"),
    "final_metrics": ("wattwise.repro._compare", "final_metrics"),
    "PackageDrift": ("wattwise.repro._reproduce", "PackageDrift"),
    "ReproducePlan": ("wattwise.repro._reproduce", "ReproducePlan"),
    "ReproduceResult": ("wattwise.repro._reproduce", "ReproduceResult"),
    "checkout": ("wattwise.repro._reproduce", "checkout"),
    "execute": ("wattwise.repro._reproduce", "execute"),
    "package_drift": ("wattwise.repro._reproduce", "package_drift"),
    "prepare": ("wattwise.repro._reproduce", "prepare"),
    "reproduce": ("wattwise.repro._reproduce", "reproduce"),
    "seed_everything": ("wattwise.tracking", "seed_everything"),
    "use_data": ("wattwise.tracking", "use_data"),
}


__getattr__, __dir__ = _lazy.lazy_attributes(__name__, _LAZY, globals())


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

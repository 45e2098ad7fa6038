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
creates runs, so it imports them when called), and its names are loaded on first use:
``from wattwise.repro import redact_argv`` on a run's start path loads the redaction
rules only (about 1 ms), not git, metadata and comparison code.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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
    from wattwise.repro._fingerprint import (
        fingerprint,
        use_data,
    )
    from wattwise.repro._interpreter import (
        resolve as resolve_interpreter,
    )
    from wattwise.repro._redact import (
        REDACTED,
        redact_argv,
        redact_text,
        redact_url,
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
    from wattwise.repro._seeds import (
        determinism_flags,
        last_seeds,
        seed_everything,
    )

#: Public name → (module, name there).
_LAZY: dict[str, tuple[str, str]] = {
    "DIFF_ARTIFACT": ("wattwise.repro._capture", "DIFF_ARTIFACT"),
    "DIFF_MAX_BYTES": ("wattwise.repro._capture", "DIFF_MAX_BYTES"),
    "DIFF_STAT_ARTIFACT": ("wattwise.repro._capture", "DIFF_STAT_ARTIFACT"),
    "Capture": ("wattwise.repro._capture", "Capture"),
    "capture": ("wattwise.repro._capture", "capture"),
    "packages": ("wattwise.repro._capture", "packages"),
    "Comparison": ("wattwise.repro._compare", "Comparison"),
    "MetricDiff": ("wattwise.repro._compare", "MetricDiff"),
    "Tolerance": ("wattwise.repro._compare", "Tolerance"),
    "Tolerances": ("wattwise.repro._compare", "Tolerances"),
    "compare_metrics": ("wattwise.repro._compare", "compare_metrics"),
    "final_metrics": ("wattwise.repro._compare", "final_metrics"),
    "ALLOWED_ENV_VARS": ("wattwise.repro._envvars", "ALLOWED_ENV_VARS"),
    "RESTORED_ON_REPRODUCE": ("wattwise.repro._envvars", "RESTORED_ON_REPRODUCE"),
    "allowed_variables": ("wattwise.repro._envvars", "allowed_variables"),
    "is_secret_name": ("wattwise.repro._envvars", "is_secret_name"),
    "fingerprint": ("wattwise.repro._fingerprint", "fingerprint"),
    "use_data": ("wattwise.repro._fingerprint", "use_data"),
    "resolve_interpreter": ("wattwise.repro._interpreter", "resolve"),
    "REDACTED": ("wattwise.repro._redact", "REDACTED"),
    "redact_argv": ("wattwise.repro._redact", "redact_argv"),
    "redact_text": ("wattwise.repro._redact", "redact_text"),
    "redact_url": ("wattwise.repro._redact", "redact_url"),
    "PackageDrift": ("wattwise.repro._reproduce", "PackageDrift"),
    "ReproducePlan": ("wattwise.repro._reproduce", "ReproducePlan"),
    "ReproduceResult": ("wattwise.repro._reproduce", "ReproduceResult"),
    "checkout": ("wattwise.repro._reproduce", "checkout"),
    "execute": ("wattwise.repro._reproduce", "execute"),
    "package_drift": ("wattwise.repro._reproduce", "package_drift"),
    "prepare": ("wattwise.repro._reproduce", "prepare"),
    "reproduce": ("wattwise.repro._reproduce", "reproduce"),
    "determinism_flags": ("wattwise.repro._seeds", "determinism_flags"),
    "last_seeds": ("wattwise.repro._seeds", "last_seeds"),
    "seed_everything": ("wattwise.repro._seeds", "seed_everything"),
}


def __getattr__(name: str) -> Any:
    """Load a public name from its module on first use (PEP 562)."""
    try:
        module, attribute = _LAZY[name]
    except KeyError:
        msg = f"module {__name__!r} has no attribute {name!r}"
        raise AttributeError(msg) from None
    value = getattr(importlib.import_module(module), attribute)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])


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

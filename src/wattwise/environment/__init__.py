"""The environment of a run: what it needs to be repeated (facts layer).

* :func:`capture` (called by every run, on a background thread): command, git commit,
  branch, remote, dirty flag and diff (text only, capped, ``.wattwise/`` left out), the
  job's own interpreter and its installed distributions, OS, and the environment
  variables of an allow-list (:data:`ALLOWED_ENV_VARS`; never secrets).
* :func:`redact_argv` / :func:`redact_text`: secrets (option values, URL credentials,
  token formats) replaced by ``***`` before anything is written.
* :func:`seed_generators` seeds ``random``, NumPy and PyTorch and remembers what it set
  (:func:`last_seeds`); :func:`wattwise.seed_everything` also records it in the active run.
* :func:`fingerprint` hashes the data a run reads (``run.use_data`` records it).
* :func:`notebook`: the notebook a Jupyter kernel runs (a run started in one records it
  as its command; the kernel's own command line cannot be re-run).

This package sits below the runs: it imports nothing from ``tracking``, ``store`` or the
workflows (``wattwise.repro`` re-runs recorded commands and sits above the runs). Its
names load on first use: ``from wattwise.environment import redact_argv`` on a run's
start path loads the redaction rules only, not git, metadata and interpreter code.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from wattwise import _lazy

if TYPE_CHECKING:
    from wattwise.environment._capture import (
        DIFF_ARTIFACT,
        DIFF_MAX_BYTES,
        DIFF_STAT_ARTIFACT,
        Capture,
        canonical_name,
        capture,
        job_environment,
        packages,
    )
    from wattwise.environment._envvars import (
        ALLOWED_ENV_VARS,
        RESTORED_ON_REPRODUCE,
        allowed_variables,
        is_secret_name,
    )
    from wattwise.environment._fingerprint import fingerprint
    from wattwise.environment._interpreter import resolve as resolve_interpreter
    from wattwise.environment._notebook import UNKNOWN_NOTEBOOK, notebook
    from wattwise.environment._redact import REDACTED, redact_argv, redact_text, redact_url
    from wattwise.environment._seeds import (
        determinism_flags,
        forget_seeds,
        last_seeds,
        seed_generators,
    )

#: Public name → (module, name there).
_LAZY: _lazy.LazyTable = {
    "DIFF_ARTIFACT": ("wattwise.environment._capture", "DIFF_ARTIFACT"),
    "DIFF_MAX_BYTES": ("wattwise.environment._capture", "DIFF_MAX_BYTES"),
    "DIFF_STAT_ARTIFACT": ("wattwise.environment._capture", "DIFF_STAT_ARTIFACT"),
    "Capture": ("wattwise.environment._capture", "Capture"),
    "canonical_name": ("wattwise.environment._capture", "canonical_name"),
    "capture": ("wattwise.environment._capture", "capture"),
    "job_environment": ("wattwise.environment._capture", "job_environment"),
    "packages": ("wattwise.environment._capture", "packages"),
    "ALLOWED_ENV_VARS": ("wattwise.environment._envvars", "ALLOWED_ENV_VARS"),
    "RESTORED_ON_REPRODUCE": ("wattwise.environment._envvars", "RESTORED_ON_REPRODUCE"),
    "allowed_variables": ("wattwise.environment._envvars", "allowed_variables"),
    "is_secret_name": ("wattwise.environment._envvars", "is_secret_name"),
    "fingerprint": ("wattwise.environment._fingerprint", "fingerprint"),
    "resolve_interpreter": ("wattwise.environment._interpreter", "resolve"),
    "UNKNOWN_NOTEBOOK": ("wattwise.environment._notebook", "UNKNOWN_NOTEBOOK"),
    "notebook": ("wattwise.environment._notebook", "notebook"),
    "REDACTED": ("wattwise.environment._redact", "REDACTED"),
    "redact_argv": ("wattwise.environment._redact", "redact_argv"),
    "redact_text": ("wattwise.environment._redact", "redact_text"),
    "redact_url": ("wattwise.environment._redact", "redact_url"),
    "determinism_flags": ("wattwise.environment._seeds", "determinism_flags"),
    "forget_seeds": ("wattwise.environment._seeds", "forget_seeds"),
    "last_seeds": ("wattwise.environment._seeds", "last_seeds"),
    "seed_generators": ("wattwise.environment._seeds", "seed_generators"),
}


__getattr__, __dir__ = _lazy.lazy_attributes(__name__, _LAZY, globals())


__all__ = [
    "ALLOWED_ENV_VARS",
    "DIFF_ARTIFACT",
    "DIFF_MAX_BYTES",
    "DIFF_STAT_ARTIFACT",
    "REDACTED",
    "RESTORED_ON_REPRODUCE",
    "UNKNOWN_NOTEBOOK",
    "Capture",
    "allowed_variables",
    "canonical_name",
    "capture",
    "determinism_flags",
    "fingerprint",
    "forget_seeds",
    "is_secret_name",
    "job_environment",
    "last_seeds",
    "notebook",
    "packages",
    "redact_argv",
    "redact_text",
    "redact_url",
    "resolve_interpreter",
    "seed_generators",
]

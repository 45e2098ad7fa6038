"""Deprecated spelling of :mod:`wattwise.tuning`, kept so code written before 0.2 still runs.

The tuning package is :mod:`wattwise.tuning`; ``wattwise.tune`` is its :func:`tune`
function, a plain function on the ``wattwise`` package. Code that imported the old package
path keeps working through this module, with a ``DeprecationWarning``:

- ``from wattwise.tune import Trial`` gives ``wattwise.tuning.Trial`` (the same object);
- ``import wattwise.tune._tuner`` gives the module ``wattwise.tuning._tuner`` itself, not a
  copy, so classes and exceptions stay identical;
- after ``import wattwise.tune``, Python binds the name ``wattwise.tune`` to this module
  (the import system sets a submodule on its parent), so this module is callable and
  forwards to :func:`wattwise.tuning.tune`.

Migration: replace ``wattwise.tune.X`` and ``from wattwise.tune import X`` by
``wattwise.tuning``; keep calling ``wattwise.tune(...)``. This shim goes in 1.0.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
import types
import warnings
from collections.abc import Sequence
from typing import Any

from wattwise.tuning import (
    AvoidedEstimate,
    Budget,
    BudgetExhaustedError,
    Spent,
    Trial,
    TrialSummary,
    TuneResult,
    estimate_avoided,
    load_objective,
    pareto_front,
    setup_energy_j,
    tune,
)

__all__ = [
    "AvoidedEstimate",
    "Budget",
    "BudgetExhaustedError",
    "Spent",
    "Trial",
    "TrialSummary",
    "TuneResult",
    "estimate_avoided",
    "load_objective",
    "pareto_front",
    "setup_energy_j",
    "tune",
]

_OLD = __name__
_NEW = "wattwise.tuning"

# A module with an empty search path is a package to the import system, so that
# ``import wattwise.tune._tuner`` asks the meta path, where _Alias answers.
__path__: list[str] = []


class _AliasLoader(importlib.abc.Loader):
    """Hands out the already-imported ``wattwise.tuning.X`` for ``wattwise.tune.X``."""

    def __init__(self, target: str) -> None:
        self._target = target

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        return importlib.import_module(self._target)

    def exec_module(self, module: types.ModuleType) -> None:
        """Nothing to run: the target module was executed under its own name."""


class _Alias(importlib.abc.MetaPathFinder):
    """Finds ``wattwise.tune.<name>`` as ``wattwise.tuning.<name>``."""

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: types.ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        if not fullname.startswith(_OLD + "."):
            return None
        new = _NEW + fullname[len(_OLD) :]
        if importlib.util.find_spec(new) is None:
            return None
        _warn(fullname, new)
        return importlib.machinery.ModuleSpec(fullname, _AliasLoader(new))


def _warn(old: str, new: str) -> None:
    warnings.warn(
        f"{old} is deprecated: the tuning package is now {new}. Import from {new} "
        "instead; wattwise.tune(...) the function is unchanged.",
        DeprecationWarning,
        stacklevel=3,
    )


class _CallableShim(types.ModuleType):
    """This module, callable like :func:`wattwise.tuning.tune` (see the module docstring)."""

    def __call__(self, *args: Any, **kwargs: Any) -> TuneResult:
        return tune(*args, **kwargs)


if not any(isinstance(finder, _Alias) for finder in sys.meta_path):
    sys.meta_path.append(_Alias())
sys.modules[__name__].__class__ = _CallableShim
_warn(_OLD, _NEW)

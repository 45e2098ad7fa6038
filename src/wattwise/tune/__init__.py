"""Energy-aware hyperparameter search on Optuna, locally and on Ray.

Optuna is the brain (samplers, pruners: successive halving, Hyperband); wattwise is the
meter and the accountant: every trial is a run in the ledger, budgets are in kWh, gCO2e
and seconds, and the study ends with what it found, what it cost and what pruning
avoided. See ``docs/explanation/tuning.md``.

Quick start::

    import optuna
    import wattwise

    def objective(trial):
        lr = trial.suggest_float("lr", 1e-4, 1e-1, log=True)
        for epoch in range(30):
            acc = train_one_epoch(lr)
            trial.report(acc, step=epoch)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return acc

    result = wattwise.tune(objective, n_trials=40, budget_kwh=0.05, direction="maximize")
    print(result.best_params, result.spent.energy_j, result.avoided_energy_j)
"""

from __future__ import annotations

import sys
import types
from typing import Any

from wattwise.tune._budget import Budget, Spent
from wattwise.tune._executors import load_objective
from wattwise.tune._pareto import (
    AvoidedEstimate,
    estimate_avoided,
    pareto_front,
    setup_energy_j,
)
from wattwise.tune._trial import BudgetExhaustedError, Trial
from wattwise.tune._tuner import TrialSummary, TuneResult, tune

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


class _CallableModule(types.ModuleType):
    """``wattwise.tune`` is this package and also its ``tune()`` function.

    Importing the package (``from wattwise.tune import Trial``) binds the name ``tune`` of
    ``wattwise`` to the package; making the package callable keeps ``wattwise.tune(...)``
    working either way.
    """

    def __call__(self, *args: Any, **kwargs: Any) -> TuneResult:
        return tune(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule

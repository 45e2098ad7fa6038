"""Energy-aware hyperparameter search on Optuna, locally and on Ray (``wattwise.tuning``).

Optuna is the brain (samplers, pruners: successive halving, Hyperband); wattwise is the
meter and the accountant: every trial is a run in the ledger, budgets are in kWh, gCO2e
and seconds, and the study ends with what it found, what it cost and what pruning
avoided. See ``docs/explanation/tuning.md``.

``wattwise.tune()`` is this package's :func:`tune`, a plain function; the package was
called ``wattwise.tune`` before 0.2 and that spelling still imports (with a
``DeprecationWarning``) through the shim :mod:`wattwise.tune`.

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

from typing import TYPE_CHECKING

from wattwise import _lazy

if TYPE_CHECKING:
    from wattwise.tuning._budget import Budget, Spent
    from wattwise.tuning._executors import load_module, load_objective
    from wattwise.tuning._fidelity import energy_step_j, fidelity_line, pruner_settings
    from wattwise.tuning._pareto import (
        AvoidedEstimate,
        estimate_avoided,
        pareto_front,
        setup_energy_j,
    )
    from wattwise.tuning._records import RayPlacement, StudyRecord, TrialRecord, totals_by_node
    from wattwise.tuning._storage import (
        CO2E_ATTR,
        CO2E_BAND_ATTR,
        ENERGY_ATTR,
        ENERGY_BAND_ATTR,
        RUN_ATTR,
        STUDY_RUN_ATTR,
        STUDY_RUNS_ATTR,
        redact_url,
        storage_label,
    )
    from wattwise.tuning._tree import StudyRun
    from wattwise.tuning._trial import BudgetExhaustedError, Trial
    from wattwise.tuning._tuner import (
        StudyInterrupted,
        Terminated,
        TrialSummary,
        TuneResult,
        default_pruner,
        default_sampler,
        tune,
    )
    from wattwise.tuning._writer import LedgerLateError, StudyLedger, open_ledger

# Loaded on first use: readers of study records (the report) need neither the tuner nor
# the executors, and nothing here imports Optuna until a study runs.
_LAZY: _lazy.LazyTable = {
    "CO2E_ATTR": "._storage",
    "CO2E_BAND_ATTR": "._storage",
    "ENERGY_ATTR": "._storage",
    "ENERGY_BAND_ATTR": "._storage",
    "RUN_ATTR": "._storage",
    "STUDY_RUN_ATTR": "._storage",
    "STUDY_RUNS_ATTR": "._storage",
    "AvoidedEstimate": "._pareto",
    "Budget": "._budget",
    "LedgerLateError": "._writer",
    "StudyLedger": "._writer",
    "open_ledger": "._writer",
    "BudgetExhaustedError": "._trial",
    "RayPlacement": "._records",
    "Spent": "._budget",
    "StudyRecord": "._records",
    "StudyRun": "._tree",
    "StudyInterrupted": "._tuner",
    "Terminated": "._tuner",
    "Trial": "._trial",
    "TrialRecord": "._records",
    "TrialSummary": "._tuner",
    "TuneResult": "._tuner",
    "default_pruner": "._tuner",
    "default_sampler": "._tuner",
    "energy_step_j": "._fidelity",
    "estimate_avoided": "._pareto",
    "fidelity_line": "._fidelity",
    "pruner_settings": "._fidelity",
    "load_module": "._executors",
    "load_objective": "._executors",
    "pareto_front": "._pareto",
    "redact_url": "._storage",
    "setup_energy_j": "._pareto",
    "storage_label": "._storage",
    "totals_by_node": "._records",
    "tune": "._tuner",
}

__all__ = [
    "CO2E_ATTR",
    "CO2E_BAND_ATTR",
    "ENERGY_ATTR",
    "ENERGY_BAND_ATTR",
    "RUN_ATTR",
    "STUDY_RUN_ATTR",
    "STUDY_RUNS_ATTR",
    "AvoidedEstimate",
    "Budget",
    "BudgetExhaustedError",
    "LedgerLateError",
    "RayPlacement",
    "Spent",
    "StudyRecord",
    "StudyInterrupted",
    "StudyLedger",
    "StudyRun",
    "Terminated",
    "Trial",
    "TrialRecord",
    "TrialSummary",
    "TuneResult",
    "default_pruner",
    "default_sampler",
    "energy_step_j",
    "estimate_avoided",
    "fidelity_line",
    "pruner_settings",
    "load_module",
    "load_objective",
    "open_ledger",
    "pareto_front",
    "redact_url",
    "setup_energy_j",
    "storage_label",
    "totals_by_node",
    "tune",
]


__getattr__, __dir__ = _lazy.lazy_attributes(__name__, _LAZY, globals())

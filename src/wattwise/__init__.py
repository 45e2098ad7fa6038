"""wattwise: measure, cut and prove the energy and carbon cost of machine learning.

Map of the package (data flows one way: meters → tracking → store ← report/cli)::

    wattwise.meters     hardware counters (RAPL, NVML) and power models, per component
    wattwise.carbon     grid intensity, PUE and location, from shipped data
    wattwise.tracking   runs: lifecycle, sampler, attribution, ``wattwise run``
    wattwise.store      the ledger (SQLite, WAL) at .wattwise/ledger.db
    wattwise.repro      run capture (git diff, packages, seeds, data), ``wattwise reproduce``
    wattwise.cache      ``@cached``: content-addressed artifacts with their energy cost
    wattwise.tuning     energy-aware hyperparameter search on Optuna (budgets, pruning, Ray);
                        ``wattwise.tune()`` is its search function
    wattwise.cli        the ``wattwise`` command

Quick start::

    import wattwise
    with wattwise.track("train", config={"lr": 0.1}) as run:
        run.log(step=1, val_acc=0.9)
    print(run.result.energy_j, run.result.co2e_g)
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from wattwise import _lazy

__version__ = "0.1.0"

logging.getLogger("wattwise").addHandler(logging.NullHandler())

if TYPE_CHECKING:
    from wattwise.cache import ArtifactCache, cached
    from wattwise.exceptions import WattwiseError
    from wattwise.repro import seed_everything
    from wattwise.tracking import Run, RunResult, current_run, log, track
    from wattwise.tuning import tune

_LAZY = {
    "ArtifactCache": "wattwise.cache",
    "cached": "wattwise.cache",
    "seed_everything": "wattwise.repro",
    "Run": "wattwise.tracking",
    "RunResult": "wattwise.tracking",
    "WattwiseError": "wattwise.exceptions",
    "current_run": "wattwise.tracking",
    "log": "wattwise.tracking",
    "track": "wattwise.tracking",
    "tune": "wattwise.tuning",
}

__all__ = [
    "__version__",
    "ArtifactCache",
    "cached",
    "current_run",
    "log",
    "Run",
    "RunResult",
    "seed_everything",
    "track",
    "tune",
    "WattwiseError",
]


# Public names load on first use, so ``import wattwise`` stays cheap.
__getattr__, __dir__ = _lazy.lazy_attributes(__name__, _LAZY, globals())


# IPython's hooks: loaded by name, as the lazy names are (no layer of wattwise imports them).
def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext wattwise``: the ``%wattwise`` and ``%%wattwise`` magics (wattwise.notebook)."""
    import importlib

    importlib.import_module("wattwise.notebook").load_ipython_extension(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    """``%unload_ext wattwise``: stops a run that ``%wattwise start`` started."""
    import importlib

    importlib.import_module("wattwise.notebook").unload_ipython_extension(ipython)

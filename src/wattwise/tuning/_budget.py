"""Budgets in physical units, what a study has spent, and by how much it overshot.

A :class:`Budget` is checked by the study driver before each new trial and at every
report of a running trial; the first limit reached becomes the study's stop reason.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from wattwise._config import check_positive
from wattwise._units import energy as _energy
from wattwise.exceptions import InvalidParameterError

J_PER_KWH = 3.6e6

#: Stop reasons, in the order budgets are checked.
STOP_REASONS = (
    "energy_budget",
    "carbon_budget",
    "timeout",
    "n_trials",
    "search_space_exhausted",
    "interrupted",
    "error",
)


@dataclasses.dataclass(frozen=True)
class Spent:
    """What a study has cost so far: its trials and its driver.

    Attributes:
        energy_j: Energy in joules (before PUE).
        co2e_g: Operational emissions in gCO2e.
        duration_s: Wall time since the study started, in seconds.
    """

    energy_j: float = 0.0
    co2e_g: float = 0.0
    duration_s: float = 0.0

    @property
    def energy_kwh(self) -> float:
        """``energy_j`` in kWh."""
        return self.energy_j / J_PER_KWH

    def to_dict(self) -> dict[str, float]:
        """JSON shape, units in the names."""
        return {
            "energy_j": self.energy_j,
            "energy_kwh": self.energy_kwh,
            "co2e_g": self.co2e_g,
            "duration_s": self.duration_s,
        }


@dataclasses.dataclass(frozen=True)
class Budget:
    """Limits of a study. None means no limit of that kind.

    Attributes:
        energy_j: Energy budget in joules (``budget_kwh`` × 3.6e6).
        co2e_g: Carbon budget in gCO2e.
        timeout_s: Wall-time budget in seconds.
        n_trials: Most trials to start.
    """

    energy_j: float | None = None
    co2e_g: float | None = None
    timeout_s: float | None = None
    n_trials: int | None = None

    @classmethod
    def from_args(
        cls,
        *,
        budget_kwh: float | None,
        budget_co2e_g: float | None,
        timeout_s: float | None,
        n_trials: int | None,
        owner: str = "wattwise.tune",
    ) -> Budget:
        """Validate user arguments into a budget.

        Raises:
            InvalidParameterError: A limit is not a positive number, or no limit is given.
        """
        if n_trials is not None and (
            isinstance(n_trials, bool) or not isinstance(n_trials, int) or n_trials < 1
        ):
            msg = (
                f"The 'n_trials' parameter of {owner} must be an int in the range [1, inf) "
                f"or None. Got {n_trials!r} instead."
            )
            raise InvalidParameterError(msg)
        kwh = None if budget_kwh is None else check_positive("budget_kwh", budget_kwh, owner)
        co2e = None
        if budget_co2e_g is not None:
            co2e = check_positive("budget_co2e_g", budget_co2e_g, owner)
        timeout = None if timeout_s is None else check_positive("timeout_s", timeout_s, owner)
        if kwh is None and co2e is None and timeout is None and n_trials is None:
            msg = (
                f"{owner} needs a limit: pass n_trials, budget_kwh, budget_co2e_g or timeout_s "
                "(on the command line --n-trials, --budget-kwh, --budget-co2e-g or --timeout-s)."
            )
            raise InvalidParameterError(msg)
        return cls(
            energy_j=None if kwh is None else kwh * J_PER_KWH,
            co2e_g=co2e,
            timeout_s=timeout,
            n_trials=n_trials,
        )

    def exhausted(self, spent: Spent) -> str | None:
        """The first physical limit reached (``energy_budget``, ``carbon_budget``, ``timeout``).

        A limit is reached when what was spent is at or above it.
        """
        if self.energy_j is not None and spent.energy_j >= self.energy_j:
            return "energy_budget"
        if self.co2e_g is not None and spent.co2e_g >= self.co2e_g:
            return "carbon_budget"
        if self.timeout_s is not None and spent.duration_s >= self.timeout_s:
            return "timeout"
        return None

    def fraction(self, spent: Spent) -> dict[str, float]:
        """Share of each set limit spent (1.0 = all of it), by limit name."""
        out = {}
        if self.energy_j is not None:
            out["energy"] = spent.energy_j / self.energy_j
        if self.co2e_g is not None:
            out["carbon"] = spent.co2e_g / self.co2e_g
        if self.timeout_s is not None:
            out["time"] = spent.duration_s / self.timeout_s
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON shape (``energy_kwh`` and ``energy_j`` both given)."""
        return {
            "energy_kwh": None if self.energy_j is None else self.energy_j / J_PER_KWH,
            "energy_j": self.energy_j,
            "co2e_g": self.co2e_g,
            "timeout_s": self.timeout_s,
            "n_trials": self.n_trials,
        }


#: The words a trial stopped (or not started) by a prediction is recorded with.
WOULD_OVERSHOOT = "this trial would overshoot"


def trial_would_overshoot(budget: Budget, spent: Spent, prediction: Any) -> str | None:
    """Why a running trial must stop now, or None: even the low end of its predicted
    remaining energy is more than the energy budget has left.

    Args:
        budget: The study's limits (only the energy budget is used).
        spent: What the study has spent, this trial's energy so far included.
        prediction: The trial's :class:`wattwise.tracking.EnergyPrediction`, or None.

    Returns:
        The reason, starting with :data:`WOULD_OVERSHOOT`, or None.
    """
    if budget.energy_j is None or prediction is None:
        return None
    left = budget.energy_j - spent.energy_j
    if prediction.remaining_low_j <= left:
        return None
    return (
        f"{WOULD_OVERSHOOT} the energy budget: it would need about "
        f"{_energy(prediction.remaining_j)} more (interval {prediction.level:.0%}: "
        f"{_energy(prediction.remaining_low_j)} to {_energy(prediction.remaining_high_j)}) to "
        f"reach step {prediction.end_step:g}, and {_energy(max(0.0, left))} is left"
    )


def start_would_overshoot(
    budget: Budget, spent: Spent, full_trial_j: Sequence[float]
) -> str | None:
    """Why no new trial may start, or None: the least a trial run to its end has cost in
    this study is more than the energy left.

    Args:
        budget: The study's limits (only the energy budget is used).
        spent: What the study has spent so far.
        full_trial_j: What trials run to their end cost, in J: each complete trial's
            energy, and the low end of the predicted total of each trial stopped because it
            would overshoot. Pruned and failed trials are not counted: what they cost says
            nothing of a trial's end, and a trial stopped early would pass for a cheap one.
    """
    costs = [e for e in full_trial_j if e > 0]
    if budget.energy_j is None or not costs:
        return None
    left = budget.energy_j - spent.energy_j
    cheapest = min(costs)
    if cheapest <= left:
        return None
    return (
        f"{WOULD_OVERSHOOT} the energy budget: not started (a trial run to its end costs at "
        f"least {_energy(cheapest)} here, the least of {len(costs)} complete or predicted, "
        f"and {_energy(max(0.0, left))} is left)"
    )


def overshoot(
    budget: Budget,
    spent: Spent,
    *,
    running_at_stop: int,
    max_report_interval_j: float,
    max_report_interval_s: float,
    would_overshoot: Sequence[dict[str, Any]] = (),
    not_started: str | None = None,
) -> dict[str, Any]:
    """How far past each limit the study went, and the bound that applies.

    Trials are cooperative: a trial running when a budget is spent stops at its next
    report, so the overshoot is at most one report interval of each trial running at that
    moment (plus the driver's few milliseconds of wrap-up).

    Args:
        budget: The study's limits.
        spent: Final spending.
        running_at_stop: Trials running when the first limit was reached.
        max_report_interval_j: Largest energy a trial spent between two reports (or
            between its start and first report, or its last report and its end), in J.
        max_report_interval_s: The same in wall seconds.
        would_overshoot: Trials stopped because their prediction said they would overshoot
            (``number``, ``reason``, the prediction's figures).
        not_started: Why the study started no further trial on a prediction, or None.

    Returns:
        ``energy_j``, ``co2e_g``, ``duration_s`` past each set limit (0 when not reached,
        None when no such limit), the bound: ``bound_energy_j``, ``bound_duration_s``, and
        ``would_overshoot`` (stopped trials), ``not_started`` (a reason or None).
    """

    def past(limit: float | None, value: float) -> float | None:
        return None if limit is None else max(0.0, value - limit)

    return {
        "energy_j": past(budget.energy_j, spent.energy_j),
        "co2e_g": past(budget.co2e_g, spent.co2e_g),
        "duration_s": past(budget.timeout_s, spent.duration_s),
        "running_trials_at_stop": running_at_stop,
        "max_report_interval_j": max_report_interval_j,
        "max_report_interval_s": max_report_interval_s,
        "bound_energy_j": running_at_stop * max_report_interval_j,
        "bound_duration_s": max_report_interval_s if running_at_stop else 0.0,
        "would_overshoot": [dict(item) for item in would_overshoot],
        "not_started": not_started,
    }

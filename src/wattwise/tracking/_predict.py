"""Predict a run's total energy from its first reports, with an interval.

Used by ``wattwise run`` (when the total number of steps is known), by tuning budgets
(a trial that would overshoot is stopped) and by the avoided-energy estimate of pruning.

Method (stated in :attr:`EnergyPrediction.method`): the energy per step between
consecutive reports (the stretch before the first report holds set-up and is left out)
gives ``n`` rates; the rest of the run is ``k`` steps at their mean rate. The interval
adds two parts:

* sampling: Student's t (level 90 %, ``n − 1`` degrees of freedom) on the sum of the
  remaining steps, whose variance is ``k² s² / n`` (the mean rate is uncertain) plus
  ``k s²`` (each step varies), ``s`` being the rates' standard deviation;
* drift: ``k × |mean rate of the later half of the reports − mean rate|``, for runs whose
  steps grow or shrink in cost (warming caches, longer sequences).

At least three reports (two rates) are needed; with fewer there is no dispersion to go on,
and no prediction. ``benchmarks/tune/predict_coverage.py`` measures how often the interval
holds the actual total.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import statistics
from collections.abc import Sequence
from typing import Any

#: Coverage the interval aims at (two-sided).
LEVEL = 0.9
#: Student's t quantile 0.95 (two-sided 90 %) for 1..30 degrees of freedom (from the t
#: distribution; mathematical constants, not measurements). Beyond 30: the normal's.
_T95 = (
    6.314, 2.920, 2.353, 2.132, 2.015, 1.943, 1.895, 1.860, 1.833, 1.812,
    1.796, 1.782, 1.771, 1.761, 1.753, 1.746, 1.740, 1.734, 1.729, 1.725,
    1.721, 1.717, 1.714, 1.711, 1.708, 1.706, 1.703, 1.701, 1.699, 1.697,
)  # fmt: skip
_Z95 = statistics.NormalDist().inv_cdf(0.95)
#: Fewest reports a prediction is made from.
MIN_REPORTS = 3

METHOD = (
    "predicted: energy so far + steps left × mean energy per step between reports; interval "
    f"{LEVEL:.0%}: Student's t on the remaining steps' sum (mean-rate and per-step variance) "
    "plus the drift between the later half's rate and the mean"
)


def t_quantile(df: int) -> float:
    """Student's t 0.95 quantile (two-sided 90 %) for ``df`` >= 1 degrees of freedom."""
    if df < 1:
        msg = f"degrees of freedom must be >= 1, got {df}"
        raise ValueError(msg)
    return _T95[df - 1] if df <= len(_T95) else _Z95


@dataclasses.dataclass(frozen=True)
class EnergyPrediction:
    """A run's predicted total energy, with its interval. Units in the names.

    Attributes:
        total_j: Predicted total energy at the end of the run.
        low_j: Lower end of the interval (never below the energy already spent).
        high_j: Upper end of the interval.
        energy_so_far_j: Energy at the last report used.
        per_step_j: Mean energy per step used.
        last_step: Step of the last report used.
        end_step: Step the run ends at (its last step, counted from 0).
        n_reports: Reports the prediction is made from.
        level: Coverage the interval aims at.
        method: How it was made, one sentence.
    """

    total_j: float
    low_j: float
    high_j: float
    energy_so_far_j: float
    per_step_j: float
    last_step: float
    end_step: float
    n_reports: int
    level: float = LEVEL
    method: str = METHOD

    @property
    def remaining_j(self) -> float:
        """Predicted energy still to spend."""
        return self.total_j - self.energy_so_far_j

    @property
    def remaining_low_j(self) -> float:
        """Lower end of the energy still to spend."""
        return self.low_j - self.energy_so_far_j

    @property
    def remaining_high_j(self) -> float:
        """Upper end of the energy still to spend."""
        return self.high_j - self.energy_so_far_j

    def contains(self, total_j: float) -> bool:
        """Whether ``total_j`` lies within the interval."""
        return self.low_j <= total_j <= self.high_j

    def to_dict(self) -> dict[str, Any]:
        """JSON shape."""
        return dataclasses.asdict(self)


def predict_energy(
    reports: Sequence[tuple[float, float]], *, end_step: float
) -> EnergyPrediction | None:
    """Predict the total energy of a run that ends at step ``end_step``.

    Args:
        reports: ``(step, cumulative energy in J at that step)``, in report order, steps
            counted from 0 and increasing (a report at a step not above the previous one is
            skipped).
        end_step: The run's last step (e.g. ``total_steps − 1``, or a trial's declared max
            step).

    Returns:
        The prediction, or None when fewer than :data:`MIN_REPORTS` usable reports exist,
        or the energy does not grow between reports (nothing to extrapolate).
    """
    points: list[tuple[float, float]] = []
    for step, energy in reports:
        s, e = float(step), float(energy)
        if not (math.isfinite(s) and math.isfinite(e)):
            continue
        if points and s <= points[-1][0]:
            continue
        points.append((s, e))
    if len(points) < MIN_REPORTS:
        return None
    rates = [(e1 - e0) / (s1 - s0) for (s0, e0), (s1, e1) in itertools.pairwise(points)]
    (first_s, first_e), (last_s, last_e) = points[0], points[-1]
    mean = (last_e - first_e) / (last_s - first_s)
    if mean <= 0:
        return None
    left = max(0.0, float(end_step) - last_s)
    n = len(rates)
    sd = statistics.stdev(rates)
    sampling = t_quantile(n - 1) * math.sqrt(left * left * sd * sd / n + left * sd * sd)
    later = rates[n // 2 :]
    drift = left * abs(statistics.fmean(later) - mean)
    total = last_e + mean * left
    half = sampling + drift
    return EnergyPrediction(
        total_j=total, low_j=max(last_e, total - half), high_j=total + half,
        energy_so_far_j=last_e, per_step_j=mean, last_step=last_s, end_step=float(end_step),
        n_reports=len(points),
    )  # fmt: skip

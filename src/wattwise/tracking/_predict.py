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
and no prediction.

Calibration (when earlier runs of the same kind are known, e.g. a study's complete trials):
a run's own dispersion misses what changes over its life on a shared machine (load, clock
speeds), so the interval is widened to at least ``q × total``, where ``q`` is the split
conformal quantile (level 90 %) of the earlier runs' relative errors
``|actual / predicted − 1|``, each predicted from as many reports as this one
(:func:`relative_error`, :func:`conformal_quantile`). ``benchmarks/tune/predict_coverage.py``
measures how often the interval holds the actual total, with and without calibration.
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


def conformal_quantile(errors: Sequence[float], level: float = LEVEL) -> float | None:
    """Split conformal quantile of earlier relative errors: the ``ceil((n + 1) × level)``-th
    smallest of ``n`` errors (their largest when ``n`` is too small for that rank), or
    None without errors."""
    values = sorted(e for e in errors if math.isfinite(e))
    if not values:
        return None
    rank = math.ceil((len(values) + 1) * level)
    return values[min(rank, len(values)) - 1]


def relative_error(
    reports: Sequence[tuple[float, float]], n_reports: int, actual_j: float, end_step: float
) -> float | None:
    """How far a finished run's total was from the prediction made from its first
    ``n_reports`` reports: ``|actual / predicted − 1|``, or None when none could be made."""
    p = predict_energy(reports[:n_reports], end_step=end_step)
    if p is None or p.total_j <= 0:
        return None
    return abs(actual_j / p.total_j - 1.0)


def predict_energy(
    reports: Sequence[tuple[float, float]],
    *,
    end_step: float,
    calibration: Sequence[float] = (),
) -> EnergyPrediction | None:
    """Predict the total energy of a run that ends at step ``end_step``.

    Args:
        reports: ``(step, cumulative energy in J at that step)``, in report order, steps
            counted from 0 and increasing (a report at a step not above the previous one is
            skipped).
        end_step: The run's last step (e.g. ``total_steps − 1``, or a trial's declared max
            step).
        calibration: Relative errors of earlier runs' predictions made from as many reports
            (:func:`relative_error`); the interval is widened to their conformal quantile.

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
    method = METHOD
    q = conformal_quantile(calibration)
    if q is not None:
        half = max(half, q * total)
        method = (
            f"{METHOD}; widened to the conformal quantile of {len(calibration)} earlier runs' "
            f"relative errors ({q:.1%})"
        )
    return EnergyPrediction(
        total_j=total, low_j=max(last_e, total - half), high_j=total + half,
        energy_so_far_j=last_e, per_step_j=mean, last_step=last_s, end_step=float(end_step),
        n_reports=len(points), method=method,
    )  # fmt: skip

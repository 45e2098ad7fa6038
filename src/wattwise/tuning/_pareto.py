"""Quality-versus-energy Pareto front, and the energy pruning avoided.

Both are computed from the ledger (energy of each trial run, values logged at each report),
not from Optuna: Optuna cannot prune multi-objective studies.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from collections.abc import Callable, Iterable, Sequence
from typing import TypeVar

from wattwise.tracking import predict_energy

T = TypeVar("T")


def pareto_front(
    items: Iterable[T],
    *,
    value: Callable[[T], float],
    energy_j: Callable[[T], float],
    direction: str = "maximize",
) -> list[T]:
    """The items no other item beats on both value and energy, cheapest first.

    An item is dominated when another has at most its energy and at least as good a value,
    and is strictly better on one of the two. Items with a NaN value or energy are left out.
    Equal items (same value and energy) are all kept.

    Args:
        items: Anything, e.g. trial summaries.
        value: The objective of an item (higher is better when ``direction`` is
            ``maximize``, lower when ``minimize``).
        energy_j: The energy of an item in joules (lower is better).
        direction: ``maximize`` or ``minimize``.

    Returns:
        The non-dominated items by increasing energy (ties: better value first).
    """
    sign = 1.0 if direction == "maximize" else -1.0
    points = [
        (float(energy_j(item)), sign * float(value(item)), i, item)
        for i, item in enumerate(items)
    ]
    points = [p for p in points if not (math.isnan(p[0]) or math.isnan(p[1]))]
    points.sort(key=lambda p: (p[0], -p[1], p[2]))
    front: list[T] = []
    best = -math.inf
    i = 0
    while i < len(points):
        j = i
        while j < len(points) and points[j][0] == points[i][0]:
            j += 1
        group_best = points[i][1]  # the group is sorted by decreasing (signed) value
        if group_best > best:
            front.extend(p[3] for p in points[i:j] if p[1] == group_best)
            best = group_best
        i = j
    return front


@dataclasses.dataclass(frozen=True)
class AvoidedEstimate:
    """Energy a stopped trial would have spent had it run to its end (estimated).

    Attributes:
        energy_j: Estimated energy avoided, in joules (0 when no estimate is possible).
        per_step_j: Energy per report step used, in joules.
        remaining_steps: Steps the trial would still have run.
        method: How the figures were obtained, one sentence (or why there is none).
        low_j: Lower end of its interval (``wattwise.tracking.predict_energy``'s, 90 %),
            or None when the trial reported fewer than three times (no dispersion to go on).
        high_j: Upper end of its interval, or None.
    """

    energy_j: float
    per_step_j: float
    remaining_steps: float
    method: str
    low_j: float | None = None
    high_j: float | None = None


def planned_last_step(complete_last_steps: Sequence[int]) -> float | None:
    """The last step a trial reaches when it runs to its end: the median of complete trials."""
    if not complete_last_steps:
        return None
    return float(statistics.median(complete_last_steps))


def setup_energy_j(reports_by_trial: Iterable[Sequence[tuple[int, float]]]) -> float | None:
    """The typical energy a trial spends before its first step (start-up, data loading).

    For each trial with two reports or more: its energy at the first report minus its
    marginal energy per step times the steps up to that report; the median of those.
    None when no trial reported twice.
    """
    setups = []
    for reports in reports_by_trial:
        if len(reports) < 2:
            continue
        (s0, e0), (s1, e1) = reports[0], reports[-1]
        if s1 > s0 and e1 > e0:
            per_step = (e1 - e0) / (s1 - s0)
            setups.append(max(0.0, e0 - per_step * (s0 + 1)))
    return float(statistics.median(setups)) if setups else None


def estimate_avoided(
    reports: Sequence[tuple[int, float]],
    *,
    energy_j: float,
    planned_step: float | None,
    declared: bool = False,
    setup_j: float | None = None,
) -> AvoidedEstimate:
    """Estimate the energy a stopped trial would still have spent.

    Energy per step: the trial's own marginal energy per step,
    (E_last − E_first) / (s_last − s_first), when it reported twice or more; with a single
    report, (E − setup) / (s_last + 1) (steps counted from 0), where ``setup`` is the
    study's typical energy before the first step (:func:`setup_energy_j`). Steps left:
    ``planned_step − s_last``, where ``planned_step`` is the step the objective declared
    with ``trial.set_max_step()``, else the median last step of the complete trials.

    Args:
        reports: ``(step, cumulative energy in J at that report)``, in report order.
        energy_j: The trial's total energy in the ledger, in J.
        planned_step: The step the trial would have ended at, or None when unknown.
        declared: Whether ``planned_step`` was declared by the objective.
        setup_j: Typical energy before the first step, in J, or None when unknown.

    Returns:
        The estimate; ``energy_j`` is 0 when it cannot be made (no report, no plan, a
        single report and no setup estimate).
    """
    if not reports:
        return AvoidedEstimate(0.0, 0.0, 0.0, "no report: nothing to extrapolate from")
    if planned_step is None:
        return AvoidedEstimate(
            0.0, 0.0, 0.0, "no complete trial and no declared max step: end unknown"
        )
    first_step, first_e = reports[0]
    last_step, last_e = reports[-1]
    if last_step > first_step and last_e > first_e:
        per_step = (last_e - first_e) / (last_step - first_step)
        how = "marginal energy per step between its first and last report"
    elif setup_j is not None and last_step >= 0:
        per_step = max(0.0, last_e - setup_j) / (last_step + 1)
        how = "its energy at its only report, less the study's median set-up energy, per step"
    else:
        return AvoidedEstimate(
            0.0, 0.0, 0.0, "a single report and no set-up estimate: nothing to extrapolate"
        )
    remaining = max(0.0, planned_step - last_step)
    plan = "declared max step" if declared else "median last step of complete trials"
    low = high = None
    interval = ""
    prediction = predict_energy(reports, end_step=planned_step)
    if prediction is not None:
        low, high = prediction.remaining_low_j, prediction.remaining_high_j
        interval = f"; interval {prediction.level:.0%} from the dispersion between its reports"
    return AvoidedEstimate(
        energy_j=per_step * remaining,
        per_step_j=per_step,
        remaining_steps=remaining,
        method=f"estimated: {how} × steps left to the {plan}{interval}",
        low_j=low,
        high_j=high,
    )

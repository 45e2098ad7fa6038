"""Pareto front on a hand-made set; the avoided-energy arithmetic."""

from __future__ import annotations

import math

import pytest

from wattwise.tuning import estimate_avoided, pareto_front, setup_energy_j

POINTS = [  # name, value (accuracy), energy (J)
    ("A", 0.90, 10.0),
    ("B", 0.95, 20.0),
    ("C", 0.93, 25.0),  # dominated by B (less accurate, more energy)
    ("D", 0.80, 5.0),
    ("E", 0.95, 30.0),  # dominated by B (as accurate, more energy)
    ("F", 0.99, 50.0),
    ("G", math.nan, 1.0),  # no value: left out
    ("H", 0.90, 10.0),  # equal to A: kept with it
    ("I", 0.85, 10.0),  # dominated by A (same energy, less accurate)
    ("J", 0.99, 60.0),  # dominated by F
]


def front(direction: str, points: list[tuple[str, float, float]] = POINTS) -> list[str]:
    chosen = pareto_front(
        points, value=lambda p: p[1], energy_j=lambda p: p[2], direction=direction
    )
    return [p[0] for p in chosen]


def test_pareto_front_when_maximising() -> None:
    assert front("maximize") == ["D", "A", "H", "B", "F"]


def test_pareto_front_when_minimising() -> None:
    losses = [("a", 0.5, 10.0), ("b", 0.3, 20.0), ("c", 0.4, 30.0), ("d", 0.3, 20.0),
              ("e", 0.1, 40.0), ("f", 0.6, 5.0), ("g", 0.7, 6.0)]  # fmt: skip
    assert front("minimize", losses) == ["f", "a", "b", "d", "e"]


def test_pareto_front_edge_cases() -> None:
    assert front("maximize", []) == []
    assert front("maximize", [("x", 0.5, math.nan)]) == []
    assert front("maximize", [("x", 0.5, 1.0)]) == ["x"]


def test_avoided_energy_from_the_marginal_energy_per_step() -> None:
    # 3 J at step 0 (2 J set-up + 1 J a step), then 1 J a step; it would have ended at step 9
    est = estimate_avoided([(0, 3.0), (1, 4.0), (2, 5.0)], energy_j=5.2, planned_step=9)
    assert est.per_step_j == pytest.approx(1.0)
    assert est.remaining_steps == 7
    assert est.energy_j == pytest.approx(7.0)
    assert est.method.startswith("estimated: marginal energy per step")
    assert "median last step of complete trials" in est.method
    declared = estimate_avoided([(0, 3.0), (2, 5.0)], energy_j=5.0, planned_step=4, declared=True)
    assert declared.energy_j == pytest.approx(2.0) and "declared max step" in declared.method


def test_avoided_energy_with_a_single_report_subtracts_the_set_up() -> None:
    est = estimate_avoided([(0, 3.0)], energy_j=3.0, planned_step=9, setup_j=2.0)
    assert est.per_step_j == pytest.approx(1.0) and est.energy_j == pytest.approx(9.0)
    unknown = estimate_avoided([(0, 3.0)], energy_j=3.0, planned_step=9)
    assert unknown.energy_j == 0 and "no set-up estimate" in unknown.method


def test_no_estimate_without_a_report_or_a_planned_end() -> None:
    assert estimate_avoided([], energy_j=3.0, planned_step=9).energy_j == 0
    assert estimate_avoided([(0, 3.0), (1, 4.0)], energy_j=4.0, planned_step=None).energy_j == 0
    past_end = estimate_avoided([(0, 1.0), (5, 6.0)], energy_j=6.0, planned_step=3)
    assert past_end.energy_j == 0 and past_end.remaining_steps == 0


def test_set_up_energy_is_the_median_over_trials_that_reported_twice() -> None:
    trials = [
        [(0, 3.0), (2, 5.0)],  # 1 J a step: set-up 3 - 1 = 2 J
        [(0, 4.0), (1, 5.0)],  # 1 J a step: set-up 3 J
        [(0, 9.0)],  # one report: no information
    ]
    assert setup_energy_j(trials) == pytest.approx(2.5)
    assert setup_energy_j([[(0, 9.0)]]) is None


def test_pareto_front_keeps_ties_on_both_axes() -> None:
    """The report's front and the tuner's are this one function; ties are all kept."""
    pts = [("a", 1.0, 0.5), ("b", 2.0, 0.7), ("c", 3.0, 0.6), ("d", 2.0, 0.7), ("e", 4.0, 0.9)]

    def ids(direction: str) -> set[str]:
        front = pareto_front(pts, value=lambda p: p[2], energy_j=lambda p: p[1],
                             direction=direction)  # fmt: skip
        return {p[0] for p in front}

    assert ids("maximize") == {"a", "b", "d", "e"}
    assert ids("minimize") == {"a"}

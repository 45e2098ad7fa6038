"""Energy prediction from a run's first reports: the point, the interval, when there is none.

The coverage test draws runs from a known process (a per-run cost per step, noisy steps,
some runs whose steps grow in cost) with a fixed seed, so its figure is exact and repeatable;
``benchmarks/tune/predict_coverage.py`` measures coverage on real trainings.
"""

from __future__ import annotations

import random

import pytest

from wattwise.tracking import (
    EnergyPrediction,
    conformal_quantile,
    predict_energy,
    relative_error,
)
from wattwise.tracking._predict import LEVEL, MIN_REPORTS, t_quantile
from wattwise.tuning import estimate_avoided


def _cumulative(rates: list[float], setup: float = 0.0) -> list[tuple[int, float]]:
    total, out = setup, []
    for step, rate in enumerate(rates):
        total += rate
        out.append((step, total))
    return out


def test_constant_rate_is_extrapolated_exactly() -> None:
    reports = _cumulative([2.0] * 5, setup=7.0)  # 9, 11, 13, 15, 17 J at steps 0..4
    p = predict_energy(reports, end_step=9)
    assert isinstance(p, EnergyPrediction)
    assert p.per_step_j == pytest.approx(2.0)
    assert p.total_j == pytest.approx(17.0 + 2.0 * 5)
    # no dispersion, no drift: the interval is the point itself
    assert p.low_j == pytest.approx(p.total_j) and p.high_j == pytest.approx(p.total_j)
    assert p.remaining_j == pytest.approx(10.0)
    assert p.level == LEVEL and "Student's t" in p.method
    assert p.to_dict()["n_reports"] == 5


def test_the_set_up_before_the_first_report_is_left_out() -> None:
    """The first report holds model creation and data loading: not a step's cost."""
    p = predict_energy([(0, 100.0), (1, 101.0), (2, 102.0)], end_step=10)
    assert p is not None
    assert p.total_j == pytest.approx(110.0)


def test_noisy_steps_give_an_interval_around_the_point() -> None:
    reports = _cumulative([1.0, 1.4, 0.8, 1.2, 0.9, 1.1])
    p = predict_energy(reports, end_step=29)
    assert p is not None
    assert p.low_j < p.total_j < p.high_j
    assert p.low_j >= reports[-1][1]  # never below what was already spent
    assert p.contains(p.total_j) and not p.contains(p.high_j + 1)


def test_fewer_reports_than_needed_give_no_prediction() -> None:
    assert MIN_REPORTS == 3
    assert predict_energy([], end_step=5) is None
    assert predict_energy([(0, 1.0), (1, 2.0)], end_step=5) is None
    # repeated or decreasing steps are not reports of progress
    assert predict_energy([(0, 1.0), (0, 2.0), (1, 3.0)], end_step=5) is None
    # energy that does not grow gives nothing to extrapolate
    assert predict_energy([(0, 5.0), (1, 5.0), (2, 5.0)], end_step=5) is None


def test_more_steps_left_widen_the_interval() -> None:
    reports = _cumulative([1.0, 1.3, 0.7, 1.1])
    near = predict_energy(reports, end_step=5)
    far = predict_energy(reports, end_step=50)
    assert near is not None and far is not None
    assert far.high_j - far.low_j > near.high_j - near.low_j


def test_growing_step_cost_widens_the_interval() -> None:
    steady = predict_energy(_cumulative([1.0, 1.1, 0.9, 1.0, 1.1, 0.9]), end_step=20)
    growing = predict_energy(_cumulative([0.6, 0.7, 0.8, 1.2, 1.3, 1.4]), end_step=20)
    assert steady is not None and growing is not None
    assert growing.high_j - growing.total_j > steady.high_j - steady.total_j


def test_t_quantiles() -> None:
    assert t_quantile(1) == pytest.approx(6.314)
    assert t_quantile(10) == pytest.approx(1.812)
    assert t_quantile(1000) == pytest.approx(1.6449, abs=1e-4)
    with pytest.raises(ValueError, match="degrees of freedom must be >= 1, got 0"):
        t_quantile(0)


def test_coverage_on_a_known_process_reaches_the_target() -> None:
    """Runs drawn from a known process: the 90 % interval holds the total >= 80 % of the time."""
    rng = random.Random(12)
    held = made = 0
    for _ in range(400):
        epochs = rng.choice([10, 20, 30])
        cost = rng.lognormvariate(0.0, 1.0)
        noise = rng.uniform(0.02, 0.3)
        growth = rng.choice([0.0, 0.0, 0.01])  # a third of runs get dearer per step
        rates = [max(0.0, cost * (1 + growth * s) * rng.gauss(1.0, noise)) for s in range(epochs)]
        reports = _cumulative(rates, setup=rng.uniform(0, 5) * cost)
        for k in (3, 5):
            p = predict_energy(reports[:k], end_step=epochs - 1)
            if p is None:
                continue
            made += 1
            held += p.contains(reports[-1][1])
    assert made == 800
    assert held / made >= 0.80, held / made


def test_avoided_estimate_carries_the_interval_from_three_reports() -> None:
    reports = _cumulative([1.0, 1.2, 0.8, 1.1], setup=3.0)
    e = estimate_avoided(reports, energy_j=reports[-1][1], planned_step=9.0, declared=True)
    assert e.energy_j == pytest.approx(e.per_step_j * 6)
    assert e.low_j is not None and e.high_j is not None
    assert 0 <= e.low_j < e.energy_j < e.high_j
    assert "interval 90%" in e.method
    two = estimate_avoided(reports[:2], energy_j=reports[1][1], planned_step=9.0, declared=True)
    assert two.energy_j > 0 and two.low_j is None and two.high_j is None


def _shifting_run(rng: random.Random, epochs: int = 20) -> list[tuple[int, float]]:
    """Steady steps that change cost once, after step 5 (another job arrives or leaves)."""
    cost, shift = rng.lognormvariate(0.0, 0.5), rng.uniform(-0.3, 0.3)
    rates = [cost * (1 + (shift if s > 5 else 0.0)) * rng.gauss(1.0, 0.01) for s in range(epochs)]
    return _cumulative(rates, setup=cost)


def test_calibration_on_earlier_runs_restores_the_coverage() -> None:
    """A run's own steps cannot see a change to come; earlier runs' errors can."""
    rng = random.Random(3)
    history = [_shifting_run(rng) for _ in range(20)]
    errors = [relative_error(r, 3, r[-1][1], 19) for r in history]
    assert all(e is not None for e in errors)
    raw = calibrated = 0
    for _ in range(300):
        run = _shifting_run(rng)
        total = run[-1][1]
        own = predict_energy(run[:3], end_step=19)
        cal = predict_energy(run[:3], end_step=19, calibration=[e for e in errors if e])
        assert own is not None and cal is not None
        assert cal.total_j == own.total_j and cal.high_j >= own.high_j
        raw += own.contains(total)
        calibrated += cal.contains(total)
    assert raw / 300 < 0.5  # its own steps alone: far too sure
    assert calibrated / 300 >= 0.8, calibrated / 300
    assert "conformal quantile of 20 earlier runs" in cal.method


def test_conformal_quantile() -> None:
    assert conformal_quantile([]) is None
    assert conformal_quantile([0.3]) == 0.3  # too few for the rank: the largest
    errors = [i / 100 for i in range(1, 20)]  # 19 errors: rank ceil(20 * 0.9) = 18
    assert conformal_quantile(errors) == pytest.approx(0.18)
    assert conformal_quantile([float("nan"), 0.1]) == 0.1

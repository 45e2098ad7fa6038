from __future__ import annotations

import math

import pytest

from wattwise.exceptions import InvalidParameterError
from wattwise.repro import Tolerance, Tolerances, compare_metrics, final_metrics


def test_default_tolerance_is_exact_up_to_rounding() -> None:
    tol = Tolerances.parse(None).default
    assert tol.allows(0.3, 0.1 + 0.2)
    assert not tol.allows(0.3, 0.3001)
    assert tol.allows(math.nan, math.nan) and not tol.allows(math.nan, 1.0)
    assert tol.allows(math.inf, math.inf) and not tol.allows(math.inf, 1e308)


def test_absolute_relative_and_per_metric_tolerances() -> None:
    tols = Tolerances.parse(["0.01", "loss=5%", "acc=0.1,f1=0"])
    assert str(tols) == "0.01, acc=0.1, f1=0, loss=5%"
    assert tols.for_metric("other") == Tolerance(0.01)
    assert tols.for_metric("loss") == Tolerance(0.05, is_relative=True)
    assert tols.for_metric("loss").allows(2.0, 2.09)
    assert not tols.for_metric("loss").allows(2.0, 2.11)
    assert tols.for_metric("acc").allows(0.9, 0.99)


@pytest.mark.parametrize("bad", ["-1", "abc", "5%%", "acc=", "inf"])
def test_bad_tolerances_are_refused(bad: str) -> None:
    with pytest.raises(InvalidParameterError, match="'tolerance' parameter"):
        Tolerances.parse(bad)


def test_compare_uses_the_last_value_of_each_series() -> None:
    original = final_metrics([(0, "acc", 0.5, 1.0), (1, "acc", 0.9, 2.0), (1, "loss", 0.2, 2.0)])
    new = final_metrics([(0, "acc", 0.9, 1.0), (1, "loss", 0.25, 2.0), (1, "extra", 1.0, 2.0)])
    result = compare_metrics(original, new, Tolerances.parse("0.01"))
    assert not result.is_reproduced
    by_key = {m.key: m for m in result.metrics}
    assert by_key["acc"].is_within and not by_key["loss"].is_within
    assert by_key["loss"].difference == pytest.approx(0.05)
    assert result.extra_keys == ("extra",)
    missing = compare_metrics({"acc": 1.0}, {}, Tolerances())
    assert missing.metrics[0].new is None and not missing.is_reproduced
    assert compare_metrics({}, {}, Tolerances()).is_reproduced

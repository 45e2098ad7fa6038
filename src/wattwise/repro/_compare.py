"""Comparing the final metrics of two runs within a tolerance.

A run's final metrics are the last value logged for each metric key (logging order).
A tolerance is absolute (``0.01``: ``|new - old| <= 0.01``) or relative (``5%``:
``|new - old| <= 0.05 * |old|``), for every metric or per metric (``acc=0.01``). The
default, ``0``, asks for equality up to float rounding (relative 1e-9). Two NaNs are
equal; a metric of the original run that the new run did not log is a difference.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from wattwise.exceptions import InvalidParameterError

_ROUNDING = 1e-9


@dataclasses.dataclass(frozen=True)
class Tolerance:
    """How far a metric may move and still count as reproduced.

    Attributes:
        value: The bound: absolute (metric units), or a fraction of ``|original|``.
        is_relative: Whether ``value`` is relative.
    """

    value: float = 0.0
    is_relative: bool = False

    def allows(self, old: float, new: float) -> bool:
        """Whether ``new`` is within this tolerance of ``old``."""
        if math.isnan(old) or math.isnan(new):
            return math.isnan(old) and math.isnan(new)
        if math.isinf(old) or math.isinf(new):
            return old == new
        bound = self.value * abs(old) if self.is_relative else self.value
        return abs(new - old) <= bound + _ROUNDING * max(abs(old), abs(new), 1e-300)

    def __str__(self) -> str:
        return f"{self.value * 100:g}%" if self.is_relative else f"{self.value:g}"


def _parse_one(text: str) -> Tolerance:
    raw = text.strip()
    relative = raw.endswith("%")
    try:
        number = float(raw[:-1] if relative else raw)
    except ValueError:
        number = float("nan")
    if not number >= 0 or math.isinf(number):
        msg = (
            "The 'tolerance' parameter must be a number >= 0, absolute (0.01) or relative "
            f"(5%), optionally per metric (acc=0.01). Got {text!r} instead."
        )
        raise InvalidParameterError(msg)
    return Tolerance(number / 100 if relative else number, relative)


@dataclasses.dataclass(frozen=True)
class Tolerances:
    """A default tolerance and per-metric overrides."""

    default: Tolerance = Tolerance()
    per_metric: Mapping[str, Tolerance] = dataclasses.field(default_factory=dict)

    def for_metric(self, key: str) -> Tolerance:
        """The tolerance that applies to ``key``."""
        return self.per_metric.get(key, self.default)

    @classmethod
    def parse(cls, specs: str | Iterable[str] | None) -> Tolerances:
        """Parse ``"0.01"``, ``"5%"``, ``"acc=0.01"`` or a list of them (comma-separated too).

        Raises:
            InvalidParameterError: A part is not a non-negative number or percentage.
        """
        if specs is None:
            return cls()
        items = [specs] if isinstance(specs, str) else list(specs)
        default = Tolerance()
        per: dict[str, Tolerance] = {}
        for item in items:
            for part in str(item).split(","):
                if not part.strip():
                    continue
                if "=" in part:
                    key, _, value = part.partition("=")
                    per[key.strip()] = _parse_one(value)
                else:
                    default = _parse_one(part)
        return cls(default, per)

    def __str__(self) -> str:
        extra = "".join(f", {k}={v}" for k, v in sorted(self.per_metric.items()))
        return f"{self.default}{extra}"


@dataclasses.dataclass(frozen=True)
class MetricDiff:
    """One metric of the comparison. ``new`` is None when the new run did not log it."""

    key: str
    original: float
    new: float | None
    tolerance: Tolerance
    is_within: bool

    @property
    def difference(self) -> float | None:
        """``new - original``, or None."""
        return None if self.new is None else self.new - self.original

    def to_dict(self) -> dict[str, Any]:
        """JSON shape."""
        return {
            "key": self.key,
            "original": self.original,
            "new": self.new,
            "difference": self.difference,
            "tolerance": str(self.tolerance),
            "is_within": self.is_within,
        }


@dataclasses.dataclass(frozen=True)
class Comparison:
    """Final metrics of an original run and its reproduction, metric by metric."""

    metrics: tuple[MetricDiff, ...]
    extra_keys: tuple[str, ...]

    @property
    def is_reproduced(self) -> bool:
        """True when every metric of the original run is within tolerance (none: True)."""
        return all(m.is_within for m in self.metrics)

    def to_dict(self) -> dict[str, Any]:
        """JSON shape."""
        return {
            "is_reproduced": self.is_reproduced,
            "metrics": [m.to_dict() for m in self.metrics],
            "extra_keys": list(self.extra_keys),
        }


def final_metrics(points: Sequence[tuple[Any, str, float, Any]]) -> dict[str, float]:
    """Last value per key of ``(step, key, value, logged_at)`` points in logging order."""
    out: dict[str, float] = {}
    for _, key, value, _ in points:
        out[key] = value
    return out


def compare_metrics(
    original: Mapping[str, float], new: Mapping[str, float], tolerances: Tolerances
) -> Comparison:
    """Compare final metrics key by key (keys of the original run)."""
    diffs = []
    for key in sorted(original):
        tol = tolerances.for_metric(key)
        got = new.get(key)
        within = got is not None and tol.allows(original[key], got)
        diffs.append(MetricDiff(key, original[key], got, tol, within))
    extra = tuple(sorted(set(new) - set(original)))
    return Comparison(tuple(diffs), extra)

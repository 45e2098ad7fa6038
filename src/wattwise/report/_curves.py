"""Learning curves for the report: the user's metrics over steps, with the energy spent.

Only the runs a report shows curves for are read point by point (at most
:data:`MAX_CURVE_RUNS`), so a report over a large ledger stays fast. Each point carries the
run's cumulative energy when it was logged: an energy value logged at the same step (the
callbacks' ``wattwise/energy_j``, a trial's ``energy_j``), else the run's power samples at
the time the point was logged; None when the run recorded neither.
"""

from __future__ import annotations

import bisect
import dataclasses
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from wattwise.store import BaseRunStore, RunRecord

#: Runs whose learning curves a report shows (their metrics are read point by point).
MAX_CURVE_RUNS = 8
#: Points kept per curve: evenly spaced, the first and last kept (``points_total`` says how
#: many were logged).
MAX_CURVE_POINTS = 400
#: Metric names a tuning trial logs for wattwise's tuner, not the user: ``objective`` (the
#: final value) and ``value`` (each report). A trial's ``value`` is shown under the study's
#: metric name where the study records one.
TUNING_METRICS = ("objective", "value")
#: Cumulative energy (J) logged at a step: the callbacks' and a tuning trial's.
ENERGY_KEYS = ("wattwise/energy_j", "energy_j")
_NOT_USER_PREFIXES = ("wattwise/", "energy", "co2e", "epoch", "learning_rate", "lr-", "step")
_VALIDATION_WORDS = frozenset(("val", "eval", "valid", "validation", "test", "dev", "holdout"))


def is_user_metric(key: str) -> bool:
    """Whether a metric is the user's (not wattwise's own energy, epoch or tuning names)."""
    low = key.lower()
    return key not in TUNING_METRICS and not low.startswith(_NOT_USER_PREFIXES)


def is_validation_metric(key: str) -> bool:
    """Whether a metric's name says it is measured on held-out data (``val_acc``, ...)."""
    return any(word in _VALIDATION_WORDS for word in re.split(r"[^a-z0-9]+", key.lower()))


@dataclasses.dataclass(frozen=True)
class EpochEnergy:
    """Energy of one epoch. Energy in J, time in s.

    Attributes:
        epoch: The epoch's number as logged.
        energy_j: Energy spent in that epoch (the first includes what ran before it).
        duration_s: Its wall time, where known.
    """

    epoch: float
    energy_j: float
    duration_s: float | None

    def to_dict(self) -> dict[str, Any]:
        """JSON shape."""
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class RunCurves:
    """One run's metrics over its steps, and the energy of its epochs.

    Attributes:
        run_id: The run.
        name: Its name.
        role: Its role in the project (``final``, ``tuning``, ...).
        status: Its status.
        metrics: Metric → ``[(step, value, energy_j)]`` in step order; ``energy_j`` is the
            run's cumulative energy when the point was logged, or None where unknown.
        points_total: Metric → points logged (more than in ``metrics`` when thinned).
        energy_source: Where the points' energy came from: ``logged`` (an energy value
            logged at the same step), ``samples`` (the power samples at the time), both
            joined by ``+``, or None.
        epochs: Energy per epoch, in order.
        epoch_source: How the epochs were found, in words (None without epochs). Unless
            the callback logged them, the first epoch includes what ran before it.
        params: The run's parameters (to tell apart runs of the same script in a legend).
    """

    run_id: str
    name: str
    role: str
    status: str
    metrics: dict[str, list[tuple[float, float, float | None]]]
    points_total: dict[str, int]
    energy_source: str | None
    epochs: list[EpochEnergy]
    epoch_source: str | None
    params: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON shape."""
        return {
            "run_id": self.run_id, "name": self.name, "role": self.role,
            "status": self.status,
            "metrics": {
                k: [{"step": s, "value": v, "energy_j": en} for s, v, en in pts]
                for k, pts in self.metrics.items()
            },
            "points_total": self.points_total, "energy_source": self.energy_source,
            "epochs": [ep.to_dict() for ep in self.epochs], "epoch_source": self.epoch_source,
        }  # fmt: skip


class _EnergyAt:
    """A run's cumulative energy at a step (logged) or at a time (from its samples)."""

    def __init__(self, store: BaseRunStore, run: RunRecord, by_step: Mapping[float, float]):
        self._store, self._run, self.by_step = store, run, by_step
        self._times: list[float] | None = None
        self._totals: list[float] = []
        self.used: set[str] = set()

    def _load(self) -> None:
        per_comp: dict[str, list[tuple[float, float]]] = {}
        for t_s, comp, _power, energy in self._store.samples(self._run.id):
            per_comp.setdefault(comp, []).append((float(t_s), float(energy)))
        times = sorted({t for pts in per_comp.values() for t, _ in pts})
        self._totals = [sum(_held(pts, t) for pts in per_comp.values()) for t in times]
        self._times = times

    def at(self, step: float | None, logged_at: float) -> float | None:
        if step is not None and step in self.by_step:
            self.used.add("logged")
            return self.by_step[step]
        if self._times is None:
            self._load()
        assert self._times is not None
        if not self._times:
            return None
        t = logged_at - self._run.started_at
        i = bisect.bisect_right(self._times, t)
        if i == 0:
            value = self._totals[0] * max(0.0, t) / self._times[0] if self._times[0] > 0 else 0.0
        elif i == len(self._times):
            value = self._totals[-1]
        else:
            t0, t1 = self._times[i - 1], self._times[i]
            e0, e1 = self._totals[i - 1], self._totals[i]
            value = e0 + (e1 - e0) * (t - t0) / (t1 - t0) if t1 > t0 else e1
        self.used.add("samples")
        return value


def _held(points: Sequence[tuple[float, float]], t: float) -> float:
    """A component's cumulative energy at ``t`` (interpolated; 0 before its first sample)."""
    i = bisect.bisect_right(points, (t, float("inf")))
    if i == 0:
        return 0.0
    if i == len(points):
        return points[-1][1]
    (t0, e0), (t1, e1) = points[i - 1], points[i]
    return e0 + (e1 - e0) * (t - t0) / (t1 - t0) if t1 > t0 else e1


Point = tuple[float, float, float | None]


def _thin(points: list[Point]) -> list[Point]:
    if len(points) <= MAX_CURVE_POINTS:
        return points
    last = len(points) - 1
    idx = sorted({round(i * last / (MAX_CURVE_POINTS - 1)) for i in range(MAX_CURVE_POINTS)})
    return [points[i] for i in idx]


def run_curves(
    store: BaseRunStore, run: RunRecord, role: str, study_metric: str | None = None,
    points: Iterable[tuple[int | None, str, float, float]] | None = None,
) -> RunCurves | None:
    """The curves of one run, or None when it logged no user metric at two steps or more.

    Args:
        store: The ledger.
        run: The run.
        role: Its role in the report.
        study_metric: The study's metric name, for a tuning trial's ``value`` reports.
        points: Its metric points ``(step, key, value, logged_at)`` if already read.
    """
    raw = list(store.metrics(run.id) if points is None else points)
    series: dict[str, list[tuple[float | None, float, float]]] = {}
    energy_by_step: dict[float, float] = {}
    marks: dict[str, dict[float, float]] = {}
    for step, key, value, logged_at in raw:
        if key in ENERGY_KEYS and step is not None:
            marks.setdefault(key, {})[float(step)] = float(value)
        if key in ("wattwise/epoch", "wattwise/epoch_energy_j", "wattwise/epoch_duration_s",
                   "epoch") and step is not None:  # fmt: skip
            marks.setdefault(key, {})[float(step)] = float(value)
        name = key
        if key == "value" and run.kind == "trial":
            name = study_metric or "value (trial reports)"
        elif not is_user_metric(key):
            continue
        if value != value or value in (float("inf"), float("-inf")):
            continue
        series.setdefault(name, []).append(
            (float(step) if step is not None else None, float(value), float(logged_at))
        )
    for key in ENERGY_KEYS:  # the callbacks' figure wins over a trial's at the same step
        for at_step, joules in marks.get(key, {}).items():
            energy_by_step.setdefault(at_step, joules)
    energy = _EnergyAt(store, run, energy_by_step)
    metrics: dict[str, list[tuple[float, float, float | None]]] = {}
    totals: dict[str, int] = {}
    for name, pts in series.items():
        stepped = [p for p in pts if p[0] is not None]
        if len({p[0] for p in stepped}) < 2:
            continue
        by_step: dict[float, tuple[float, float]] = {}
        for x, y, at in stepped:
            if x is not None:
                by_step[x] = (y, at)  # the last value logged at a step
        ordered = sorted(by_step.items())
        totals[name] = len(ordered)
        metrics[name] = _thin([(s, v, energy.at(s, at)) for s, (v, at) in ordered])
    epochs, epoch_source = _epochs(marks, energy, raw, run)
    if not metrics and not epochs:
        return None
    source = "+".join(sorted(energy.used)) or None
    return RunCurves(
        run_id=run.id, name=run.name, role=role, status=run.status.value, metrics=metrics,
        points_total=totals, energy_source=source, epochs=epochs, epoch_source=epoch_source,
        params=dict(run.params or {}),
    )  # fmt: skip


#: Parameters a legend label names at most (the first that differ, by name).
_LABEL_PARAMS = 2
#: Characters of a parameter's value a legend label keeps.
_LABEL_VALUE_CHARS = 12


def _param_text(key: str, value: Any) -> str:
    shown = f"{value:.4g}" if isinstance(value, float) else str(value)
    if len(shown) > _LABEL_VALUE_CHARS:
        shown = shown[: _LABEL_VALUE_CHARS - 1] + "…"
    return f"{key}={shown}"


def series_labels(curves: Sequence[RunCurves]) -> list[str]:
    """A legend label per run that tells it apart from the other plotted runs.

    ``name (role)`` where that is unique; runs that share it (two ``learn.py`` final runs)
    also name the parameters whose values differ between them (at most two,
    ``learn.py (final, lr=0.01)``), and their short id when that still leaves a tie.
    """
    base = [f"{c.name} ({c.role}" for c in curves]
    groups: dict[str, list[int]] = {}
    for i, label in enumerate(base):
        groups.setdefault(label, []).append(i)
    labels = [f"{label})" for label in base]
    for label, members in groups.items():
        if len(members) < 2:
            continue
        keys = sorted({k for i in members for k in curves[i].params})
        missing = object()
        differing = [
            k for k in keys
            if len({repr(curves[i].params.get(k, missing)) for i in members}) > 1
        ][:_LABEL_PARAMS]  # fmt: skip
        for i in members:
            extra = [_param_text(k, curves[i].params[k]) for k in differing
                     if k in curves[i].params]  # fmt: skip
            labels[i] = f"{label}, {', '.join(extra)})" if extra else f"{label})"
        seen: dict[str, int] = {}
        for i in members:
            seen[labels[i]] = seen.get(labels[i], 0) + 1
        for i in members:
            if seen[labels[i]] > 1:
                labels[i] = f"{labels[i][:-1]}, {curves[i].run_id[:8]})"
    return labels


def _epochs(
    marks: Mapping[str, Mapping[float, float]], energy: _EnergyAt,
    raw: Sequence[tuple[int | None, str, float, float]], run: RunRecord,
) -> tuple[list[EpochEnergy], str | None]:
    logged = marks.get("wattwise/epoch_energy_j")
    if logged:
        numbers = marks.get("wattwise/epoch", {})
        times = marks.get("wattwise/epoch_duration_s", {})
        out = [
            EpochEnergy(epoch=numbers.get(step, float(i)), energy_j=value,
                        duration_s=times.get(step))
            for i, (step, value) in enumerate(sorted(logged.items()))
        ]  # fmt: skip
        return out, "logged by the wattwise callback at each epoch's end"
    # The user's own epoch metric: an epoch ends at its last point; energy from the samples.
    ends: dict[float, tuple[float | None, float]] = {}
    for step, key, value, logged_at in raw:
        if key == "epoch":
            ends[float(value)] = (float(step) if step is not None else None, float(logged_at))
    source = "the run's power samples at the last point of each logged epoch"
    if not ends and run.kind == "trial":
        for step, key, _value, logged_at in raw:
            if key == "value" and step is not None:
                ends[float(step)] = (float(step), float(logged_at))
        source = "the energy at each of the trial's reports (one per epoch)"
    if len(ends) < 2:
        return [], None
    found: list[EpochEnergy] = []
    before, t_before = 0.0, run.started_at
    for epoch, (end_step, at) in sorted(ends.items(), key=lambda kv: kv[1][1]):
        total = energy.at(end_step, at)
        if total is None:
            return [], None
        found.append(EpochEnergy(epoch=epoch, energy_j=max(0.0, total - before),
                                 duration_s=max(0.0, at - t_before)))  # fmt: skip
        before, t_before = total, at
    return found, source


def validation_metric(curves: Sequence[RunCurves]) -> str | None:
    """The metric the Green AI plot shows: a validation metric most runs logged with energy."""
    runs: dict[str, int] = {}
    for c in curves:
        for key, pts in c.metrics.items():
            if any(en is not None for _, _, en in pts):
                runs[key] = runs.get(key, 0) + 1
    if not runs:
        return None
    return min(runs, key=lambda k: (not is_validation_metric(k), -runs[k], k))

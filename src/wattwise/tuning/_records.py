"""What a study and its trials write into the ledger, as typed records.

A study's driver run carries a :class:`StudyRecord` at ``record["extra"]["study"]``; each
trial's run a :class:`TrialRecord` at ``record["extra"]["trial"]``. The tuner writes them
with :meth:`to_record`; the report and anyone else reads them with :meth:`from_record`,
never by string keys.

Reading is lenient, because ledgers outlive releases: a record written by an older
wattwise (or by hand) may lack fields or hold a value of the wrong type; such a field
reads as its default, and keys this version does not know are kept in ``other`` so that
``from_record`` then ``to_record`` loses nothing.

This module imports nothing from wattwise, so readers pay nothing for it.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any, ClassVar

#: Trial states a trial record may hold (Optuna's, lower-case).
TRIAL_STATES = ("complete", "pruned", "fail")


def _extra(record: Mapping[str, Any], key: str) -> Mapping[str, Any] | None:
    extra = record.get("extra")
    if not isinstance(extra, Mapping):
        return None
    found = extra.get(key)
    return found if isinstance(found, Mapping) else None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _int(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _dict(value: Any) -> dict[str, Any]:
    return {str(k): v for k, v in value.items()} if isinstance(value, Mapping) else {}


def _str_list(value: Any) -> list[str]:
    if not isinstance(value, list):
        return []
    return [str(x) for x in value if isinstance(x, str)]


@dataclasses.dataclass(frozen=True)
class TrialRecord:
    """One trial, as its run records it (``record["extra"]["trial"]``).

    Attributes:
        number: Optuna trial number.
        state: ``complete`` | ``pruned`` | ``fail``.
        value: Final value of a complete trial, else None.
        last_step: Step of its last report, or None.
        last_value: Value at its last report, or None.
        n_reports: How many times it reported (None: unknown, e.g. its worker died).
        max_step: The step it declared it would end at (``trial.set_max_step``), or None.
        stopped_by: ``pruner`` | ``budget`` for a pruned trial, else None.
        error: Why it failed, or None.
        params: Its parameters.
        user_attrs: Its user attributes (``trial.set_user_attr``).
        crashed: Whether its process died (the driver wrote this record for it).
        other: Keys this version does not know, kept as read.
    """

    KEY: ClassVar[str] = "trial"

    number: int | None = None
    state: str = "fail"
    value: float | None = None
    last_step: int | None = None
    last_value: float | None = None
    n_reports: int | None = None
    max_step: int | None = None
    stopped_by: str | None = None
    error: str | None = None
    params: dict[str, Any] = dataclasses.field(default_factory=dict)
    user_attrs: dict[str, Any] = dataclasses.field(default_factory=dict)
    crashed: bool = False
    other: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def complete(self) -> bool:
        """Whether the trial ran to its end."""
        return self.state == "complete"

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> TrialRecord | None:
        """The trial record in a run's record, or None when the run is not a trial."""
        data = _extra(record, cls.KEY)
        return None if data is None else cls.from_dict(data)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrialRecord:
        """Read the JSON written by :meth:`to_record` (or by an older wattwise)."""
        known = {f.name for f in dataclasses.fields(cls)} - {"other"}
        state = _str(data.get("state"))
        return cls(
            number=_int(data.get("number")),
            state=state if state in TRIAL_STATES else "fail",
            value=_number(data.get("value")),
            last_step=_int(data.get("last_step")),
            last_value=_number(data.get("last_value")),
            n_reports=_int(data.get("n_reports")),
            max_step=_int(data.get("max_step")),
            stopped_by=_str(data.get("stopped_by")),
            error=_str(data.get("error")),
            params=_dict(data.get("params")),
            user_attrs=_dict(data.get("user_attrs")),
            crashed=data.get("crashed") is True,
            other={str(k): v for k, v in data.items() if k not in known},
        )  # fmt: skip

    def to_record(self) -> dict[str, Any]:
        """The JSON stored at ``record["extra"]["trial"]``."""
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        data.pop("other")
        if not self.crashed:
            data.pop("crashed")  # written only for trials whose worker died
        return {**self.other, **data}


@dataclasses.dataclass(frozen=True)
class StudyRecord:
    """A study, as its driver run records it (``record["extra"]["study"]``).

    This is also the study summary of :class:`~wattwise.tuning.TuneResult` and the shape of
    ``wattwise tune --json`` (less its ``trials``). Energy in joules, carbon in gCO2e.

    Attributes:
        study_id: The driver run's id.
        study_name: Name of the study.
        direction: ``maximize`` | ``minimize``, or None when not recorded.
        metric: The name of the objective when the record names one (wattwise's tuner logs
            it as ``objective`` and leaves this None).
        executor: ``inline`` | ``processes`` | ``ray``.
        n_workers: Trials run in parallel.
        sampler: Class name of the Optuna sampler.
        pruner: Class name of the Optuna pruner.
        energy_fidelity: ``enabled``, ``step_j`` and ``step_j_source``.
        n_trials: Trials by state (``complete``, ``pruned``, ``fail``), ``total`` and
            ``pruned_by_budget``.
        budget: The limits (see ``Budget.to_dict``).
        spent: What it cost (see ``Spent.to_dict``) and the trials'/driver's shares.
        stop_reason: Why the study stopped.
        overshoot: How far past the limits it went, and the bound.
        best: The best complete trial: ``number``, ``run_id``, ``value``, ``params``,
            ``energy_j``, ``co2e_g``; None when none completed.
        best_run_id: The best trial's run id, or None.
        pareto_run_ids: Run ids of the trials on the value-versus-energy Pareto front.
        pareto: Those trials: ``number``, ``run_id``, ``state``, ``value``, ``energy_j``.
        avoided_energy_j: Estimated energy pruning avoided, or None when not recorded.
        avoided_co2e_g: The same in gCO2e, or None.
        avoided_by: Avoided energy by cause (``pruner``, ``budget``).
        avoided_method: How the avoided energy was estimated, in words.
        trial_run_ids: Run ids of every trial that started.
        other: Keys this version does not know, kept as read.
    """

    KEY: ClassVar[str] = "study"

    study_id: str | None = None
    study_name: str | None = None
    direction: str | None = None
    metric: str | None = None
    executor: str | None = None
    n_workers: int | None = None
    sampler: str | None = None
    pruner: str | None = None
    energy_fidelity: dict[str, Any] = dataclasses.field(default_factory=dict)
    n_trials: dict[str, int] = dataclasses.field(default_factory=dict)
    budget: dict[str, Any] = dataclasses.field(default_factory=dict)
    spent: dict[str, Any] = dataclasses.field(default_factory=dict)
    stop_reason: str | None = None
    overshoot: dict[str, Any] = dataclasses.field(default_factory=dict)
    best: dict[str, Any] | None = None
    best_run_id: str | None = None
    pareto_run_ids: list[str] = dataclasses.field(default_factory=list)
    pareto: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    avoided_energy_j: float | None = None
    avoided_co2e_g: float | None = None
    avoided_by: dict[str, float] = dataclasses.field(default_factory=dict)
    avoided_method: str | None = None
    trial_run_ids: list[str] = dataclasses.field(default_factory=list)
    other: dict[str, Any] = dataclasses.field(default_factory=dict)

    #: Older or foreign spellings of ``metric``, read in this order.
    _METRIC_KEYS: ClassVar[tuple[str, ...]] = ("metric", "metric_name", "objective_name")

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> StudyRecord | None:
        """The study record in a run's record, or None when the run is not a study driver."""
        data = _extra(record, cls.KEY)
        return None if data is None else cls.from_dict(data)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StudyRecord:
        """Read the JSON written by :meth:`to_record` (or by an older wattwise)."""
        known = {f.name for f in dataclasses.fields(cls)} - {"other"}
        other = {str(k): v for k, v in data.items() if k not in known}
        direction = _str(data.get("direction"))
        directions = other.get("directions")  # multi-objective spelling: the first one
        if direction is None and isinstance(directions, list) and directions:
            direction = _str(directions[0])
        direction = direction.lower() if direction else None
        metric = next((m for m in (_str(data.get(k)) for k in cls._METRIC_KEYS) if m), None)
        best = data.get("best")
        n_trials = {
            str(k): v for k, v in _dict(data.get("n_trials")).items()
            if isinstance(v, int) and not isinstance(v, bool)
        }  # fmt: skip
        avoided_by = {
            str(k): float(v) for k, v in _dict(data.get("avoided_by")).items()
            if _number(v) is not None
        }  # fmt: skip
        pareto = [_dict(p) for p in data.get("pareto") or [] if isinstance(p, Mapping)]
        return cls(
            study_id=_str(data.get("study_id")),
            study_name=_str(data.get("study_name")),
            direction=direction if direction in ("maximize", "minimize") else None,
            metric=metric,
            executor=_str(data.get("executor")),
            n_workers=_int(data.get("n_workers")),
            sampler=_str(data.get("sampler")),
            pruner=_str(data.get("pruner")),
            energy_fidelity=_dict(data.get("energy_fidelity")),
            n_trials=n_trials,
            budget=_dict(data.get("budget")),
            spent=_dict(data.get("spent")),
            stop_reason=_str(data.get("stop_reason")),
            overshoot=_dict(data.get("overshoot")),
            best=_dict(best) if isinstance(best, Mapping) else None,
            best_run_id=_str(data.get("best_run_id")),
            pareto_run_ids=_str_list(data.get("pareto_run_ids")),
            pareto=pareto,
            avoided_energy_j=_finite(data.get("avoided_energy_j")),
            avoided_co2e_g=_finite(data.get("avoided_co2e_g")),
            avoided_by=avoided_by,
            avoided_method=_str(data.get("avoided_method")),
            trial_run_ids=_str_list(data.get("trial_run_ids")),
            other={k: v for k, v in other.items() if k not in cls._METRIC_KEYS},
        )  # fmt: skip

    def to_record(self) -> dict[str, Any]:
        """The JSON stored at ``record["extra"]["study"]``.

        ``metric`` is written only when set (wattwise's tuner does not set it).
        """
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        data.pop("other")
        if data["metric"] is None:
            data.pop("metric")
        return {**self.other, **data}


def _finite(value: Any) -> float | None:
    number = _number(value)
    return number if number is not None and math.isfinite(number) else None

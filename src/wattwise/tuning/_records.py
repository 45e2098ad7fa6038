"""What a study and its trials write into the ledger, as typed records.

A study's driver run carries a :class:`StudyRecord` at ``record["extra"]["study"]``; each
trial's run a :class:`TrialRecord` at ``record["extra"]["trial"]``, and a trial that ran on
a Ray cluster a :class:`RayPlacement` at ``record["extra"]["ray"]`` (its node and job).
The tuner writes them with :meth:`to_record`; the report and anyone else reads them with
:meth:`from_record`, never by string keys.

Reading is lenient, because ledgers outlive releases: a record written by an older
wattwise (or by hand) may lack fields or hold a value of the wrong type; such a field
reads as its default, and keys this version does not know are kept in ``other`` so that
``from_record`` then ``to_record`` loses nothing.

This module imports nothing from wattwise, so readers pay nothing for it.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping
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
class RayPlacement:
    """Where a trial ran on a Ray cluster, as its run records it (``record["extra"]["ray"]``).

    Written in the process that ran the trial (a Ray actor of ``wattwise.tune(...,
    executor="ray")``, or a Ray Tune trial wrapped by ``wattwise.ray_tune.track_trainable``),
    from ``ray.get_runtime_context()`` there.

    Attributes:
        node_id: Ray's id of the node (hex), or None when not recorded.
        job_id: Ray's id of the job (hex), or None.
        trial_id: Ray Tune's trial id (Ray Tune trials only), or None.
        trial_name: Ray Tune's trial name, or None.
        experiment: Ray Tune's experiment name, or None.
        other: Keys this version does not know, kept as read.
    """

    KEY: ClassVar[str] = "ray"

    node_id: str | None = None
    job_id: str | None = None
    trial_id: str | None = None
    trial_name: str | None = None
    experiment: str | None = None
    other: dict[str, Any] = dataclasses.field(default_factory=dict)

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> RayPlacement | None:
        """The placement in a run's record, or None when the run did not run on Ray."""
        data = _extra(record, cls.KEY)
        return None if data is None else cls.from_dict(data)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RayPlacement:
        """Read the JSON written by :meth:`to_record` (unknown keys kept in ``other``)."""
        known = {f.name for f in dataclasses.fields(cls)} - {"other"}
        return cls(
            node_id=_str(data.get("node_id")) or None,
            job_id=_str(data.get("job_id")) or None,
            trial_id=_str(data.get("trial_id")) or None,
            trial_name=_str(data.get("trial_name")) or None,
            experiment=_str(data.get("experiment")) or None,
            other={str(k): v for k, v in data.items() if k not in known},
        )

    def to_record(self) -> dict[str, Any]:
        """The JSON stored at ``record["extra"]["ray"]`` (fields that are None left out)."""
        data = {
            f.name: getattr(self, f.name) for f in dataclasses.fields(self)
            if f.name != "other" and getattr(self, f.name) is not None
        }  # fmt: skip
        return {**self.other, **data}


#: The key under which trials without a recorded node are totalled.
UNKNOWN_NODE = "unknown"


def totals_by_node(
    trials: Iterable[tuple[str | None, float, float]],
) -> dict[str, dict[str, Any]]:
    """Trials, energy and carbon per Ray node, from ``(node_id, energy_j, co2e_g)`` rows.

    Returns:
        ``{node_id: {"trials": n, "energy_j": J, "co2e_g": g}}``, nodes sorted by id; rows
        without a node id are totalled under ``"unknown"``. Empty when no row has a node
        id (a study that did not run on Ray), so the totals always add up to the trials'.
    """
    rows = list(trials)
    if not any(node for node, _, _ in rows):
        return {}
    nodes: dict[str, dict[str, Any]] = {}
    for node, energy, co2e in rows:
        entry = nodes.setdefault(node or UNKNOWN_NODE, {"trials": 0, "energy_j": 0.0,
                                                        "co2e_g": 0.0})  # fmt: skip
        entry["trials"] += 1
        entry["energy_j"] += float(energy)
        entry["co2e_g"] += float(co2e)
    return {node: nodes[node] for node in sorted(nodes)}


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
        pruner_settings: What the pruner was constructed with, where it could be read
            (``wattwise.tuning.pruner_settings``), e.g. ``min_resource`` and
            ``reduction_factor``; empty in older records.
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
        nodes: Totals per Ray node, ``{node_id: {"trials", "energy_j", "co2e_g"}}`` (see
            :meth:`node_totals`); empty for a study that did not run on Ray.
        summary_source: None when the trials' figures were read from the ledger; else why
            they are the driver's own (the ledger did not answer in time, or failed): each
            trial's value, reports, energy and carbon as its run measured them, and no
            totals per Ray node.
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
    pruner_settings: dict[str, Any] = dataclasses.field(default_factory=dict)
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
    nodes: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    summary_source: str | None = None
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
            pruner_settings={
                str(k): v for k, v in _dict(data.get("pruner_settings")).items()
                if isinstance(v, (str, int, float))
            },
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
            nodes=_nodes(data.get("nodes")),
            summary_source=_str(data.get("summary_source")),
            other={k: v for k, v in other.items() if k not in cls._METRIC_KEYS},
        )  # fmt: skip

    @staticmethod
    def node_totals(runs: Iterable[Any]) -> dict[str, dict[str, Any]]:
        """Trials, energy and carbon per Ray node of a study's trial runs.

        Args:
            runs: The trials' runs (``wattwise.store.RunRecord``, or anything with
                ``record``, ``energy_j`` and ``co2e_g``); the node is read from each run's
                :class:`RayPlacement`.

        Returns:
            ``{node_id: {"trials": n, "energy_j": J, "co2e_g": g}}`` (see
            :func:`totals_by_node`); empty when no trial recorded a Ray node.
        """
        rows = []
        for run in runs:
            record = getattr(run, "record", None)
            placement = RayPlacement.from_record(record) if isinstance(record, Mapping) else None
            node = placement.node_id if placement is not None else None
            energy = _number(getattr(run, "energy_j", None)) or 0.0
            rows.append((node, energy, _number(getattr(run, "co2e_g", None)) or 0.0))
        return totals_by_node(rows)

    def to_record(self) -> dict[str, Any]:
        """The JSON stored at ``record["extra"]["study"]``.

        ``metric`` is written only when set (wattwise's tuner does not set it), ``nodes``
        only when a trial ran on a Ray node, ``pruner_settings`` only when some were read,
        ``summary_source`` only when the summary is the driver's own.
        """
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        data.pop("other")
        if data["metric"] is None:
            data.pop("metric")
        if not data["nodes"]:
            data.pop("nodes")  # written for studies that ran on Ray
        if not data["pruner_settings"]:
            data.pop("pruner_settings")  # written when they could be read
        if data["summary_source"] is None:
            data.pop("summary_source")  # written when the ledger did not answer
        return {**self.other, **data}


def _nodes(value: Any) -> dict[str, dict[str, Any]]:
    """Per-node totals as read: entries that are not mappings are dropped, fields kept typed."""
    nodes = {}
    for node, entry in _dict(value).items():
        if isinstance(entry, Mapping):
            nodes[node] = {
                "trials": _int(entry.get("trials")) or 0,
                "energy_j": _finite(entry.get("energy_j")) or 0.0,
                "co2e_g": _finite(entry.get("co2e_g")) or 0.0,
                **{str(k): v for k, v in entry.items()
                   if k not in ("trials", "energy_j", "co2e_g")},
            }  # fmt: skip
    return nodes


def _finite(value: Any) -> float | None:
    number = _number(value)
    return number if number is not None and math.isfinite(number) else None

"""What a report says, computed from the ledger: the data model every renderer shares.

``build_report()`` reads the store (never writes it) and returns a :class:`Report`: the
headline, what the numbers include, the power timeline, the project view (cumulative
carbon, final runs versus everything else, savings), studies (accuracy versus energy,
Pareto front), the runs, the hardware and location, the SCI and the data credits. The
HTML, Markdown and JSON renderers only format it.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

from wattwise import __version__
from wattwise import _units as units
from wattwise.exceptions import InvalidParameterError, RunNotFoundError
from wattwise.report._attributions import _CREDITS as CREDITED_FILES
from wattwise.report._attributions import DataCredit, data_credits
from wattwise.report._covers import covers_lines
from wattwise.report._curves import MAX_CURVE_RUNS, RunCurves, is_user_metric, run_curves
from wattwise.report._sci import SET_COUNT, USER_COUNT, SciResult, compute_sci, default_count
from wattwise.store import (
    BaseRunStore,
    RunRecord,
    declared_role,
    footprint_role,
    last_metrics,
)
from wattwise.tuning import StudyRecord, TrialRecord, fidelity_line, pareto_front

Scope = Literal["run", "study", "project"]
ROLES = ("final", "tuning", "cache-fill", "reproduce", "failed", "crashed", "running")
ROLE_LABELS = {
    "final": "final runs",
    "tuning": "tuning (trials and studies)",
    "cache-fill": "cache fills (artifacts computed for reuse)",
    "reproduce": "reproductions",
    "failed": "failed",
    "crashed": "crashed",
    "running": "still running",
}
_MINIMIZE_HINTS = ("loss", "error", "err", "mse", "rmse", "mae", "perplexity", "ppl", "wer")
_MAXIMIZE_HINTS = ("acc", "f1", "auc", "score", "precision", "recall", "bleu", "rouge", "map")
MAX_TABLE_RUNS = 200
#: A project with more counted runs than this is summarised: cumulative carbon per time
#: bucket instead of per run, the runs that used the most energy, the studies that used
#: the most in full and the rest as one table row each, and metrics read only for the
#: runs shown. Smaller projects are shown run by run.
LARGE_PROJECT_RUNS = MAX_TABLE_RUNS
#: Runs listed as "the runs that used the most energy" in a project view.
TOP_RUNS = 20
#: Studies shown in full (trials plotted) in a summarised project; the rest are table rows.
TOP_STUDIES = 10
#: What the project view is grouped by.
GROUPINGS = ("user", "host", "tag", "month")


def _flops_of(record: Mapping[str, Any]) -> tuple[float | None, float | None]:
    flops = record.get("flops")
    if not isinstance(flops, Mapping):
        return None, None
    total = flops.get("flops_total")
    samples = flops.get("samples_total")
    return (
        float(total) if isinstance(total, (int, float)) and total > 0 else None,
        float(samples) if isinstance(samples, (int, float)) and samples > 0 else None,
    )


@dataclasses.dataclass(frozen=True)
class RunSummary:
    """One run as a report shows it. Energy in J, carbon in gCO2e, times in Unix s.

    Attributes:
        counted: Whether the run counts in the totals (False for runs nested in another
            run of the report, whose energy is already in their parent's).
        methods: Component → method (``counter``, ``sampled``, ``model``, ``user``).
        meters: Component → meter id.
        flops_total: FLOPs recorded for the run (``run.count_flops`` or a callback).
        samples_total: Training samples processed, where a callback recorded them.
        metrics: Last value of each logged metric.
    """

    id: str
    name: str
    kind: str
    status: str
    role: str
    counted: bool
    started_at: float
    ended_at: float | None
    duration_s: float
    energy_j: float
    energy_band_j: float
    machine_energy_j: float
    co2e_g: float
    co2e_band_g: float
    region: str | None
    parent_id: str | None
    study_id: str | None
    methods: dict[str, str]
    meters: dict[str, str]
    pue: float | None
    intensity_g_per_kwh: float | None
    flops_total: float | None
    samples_total: float | None
    metrics: dict[str, float]
    tags: list[str]
    params: dict[str, Any]

    @property
    def end_time(self) -> float:
        """End in Unix seconds (start + duration for runs without an end)."""
        return self.ended_at if self.ended_at is not None else self.started_at + self.duration_s

    @property
    def flops_per_j(self) -> float | None:
        """FLOPs per joule of attributed energy, where both are known."""
        if self.flops_total is None or self.energy_j <= 0:
            return None
        return self.flops_total / self.energy_j

    @property
    def samples_per_j(self) -> float | None:
        """Training samples per joule, where both are known."""
        if self.samples_total is None or self.energy_j <= 0:
            return None
        return self.samples_total / self.energy_j

    def to_dict(self) -> dict[str, Any]:
        """JSON shape."""
        data = dataclasses.asdict(self)
        data["started_at"] = _iso(self.started_at)
        data["ended_at"] = _iso(self.ended_at)
        data["flops_per_j"] = self.flops_per_j
        data["samples_per_j"] = self.samples_per_j
        return data


@dataclasses.dataclass(frozen=True)
class ComponentTotal:
    """Energy of one component over the counted runs.

    Attributes:
        component: ``cpu``, ``dram``, ``gpu``.
        energy_j: Attributed energy, J.
        band_j: Half-width of the band, J; None when some run's band is unknown.
        methods: Methods used (``model``, ``counter``, ...).
        meters: Meter ids used.
        sources: Meter sources (one line each).
    """

    component: str
    energy_j: float
    band_j: float | None
    methods: list[str]
    meters: list[str]
    sources: list[str]

    @property
    def label(self) -> str:
        """``measured``, ``estimated`` or ``measured + estimated``."""
        return " + ".join(sorted({units.method_label(m) for m in self.methods}))

    def to_dict(self) -> dict[str, Any]:
        """JSON shape."""
        return {**dataclasses.asdict(self), "label": self.label}


@dataclasses.dataclass(frozen=True)
class Headline:
    """The report's top figures. Energy in J (before PUE), carbon in gCO2e.

    Attributes:
        runs: Runs in the report.
        counted_runs: Runs whose cost is summed (top-level ones).
        duration_s: Summed wall time of the counted runs.
        energy_j: Attributed IT energy.
        energy_band_j: Half-width of the band (sum of component bands).
        band_complete: False when some component's band is unknown (counters).
        facility_energy_j: ``energy_j`` × PUE, per run.
        co2e_g: Operational emissions (energy × PUE × grid intensity).
        co2e_band_g: Band of ``co2e_g`` (from the energy band).
        machine_energy_j: Whole-machine energy over the counted runs.
        components: Per-component totals.
        flops_total: FLOPs over the runs that recorded them.
        flops_runs: How many counted runs recorded FLOPs.
        flops_per_j: FLOPs per joule over those runs.
        samples_total: Samples over the runs that recorded them.
        samples_per_j: Samples per joule over those runs.
        first_started_at: Earliest start.
        last_ended_at: Latest end.
    """

    runs: int
    counted_runs: int
    duration_s: float
    energy_j: float
    energy_band_j: float
    band_complete: bool
    facility_energy_j: float
    co2e_g: float
    co2e_band_g: float
    machine_energy_j: float
    components: list[ComponentTotal]
    flops_total: float | None
    flops_runs: int
    flops_per_j: float | None
    samples_total: float | None
    samples_per_j: float | None
    first_started_at: float | None
    last_ended_at: float | None

    @property
    def method_label(self) -> str:
        """How the energy was obtained, e.g. ``estimated (model)``."""
        methods = sorted({m for c in self.components for m in c.methods})
        if not methods:
            return "no energy recorded"
        labels = sorted({units.method_label(m) for m in methods})
        return f"{' + '.join(labels)} ({', '.join(methods)})"

    def to_dict(self) -> dict[str, Any]:
        """JSON shape."""
        data = dataclasses.asdict(self)
        data["components"] = [c.to_dict() for c in self.components]
        data["method_label"] = self.method_label
        data["energy_kwh"] = self.energy_j / units.JOULES_PER_KWH
        return data


@dataclasses.dataclass(frozen=True)
class Timeline:
    """Power per component over one run (from the sampler).

    Attributes:
        run_id: The run.
        run_name: Its name.
        why: Why this run is shown (``"this run"``, ``"the largest run"``).
        series: Component → ``[(t_s, power_w, cumulative energy_j)]``; ``t_s`` from the
            run's start.
        methods: Component → method.
    """

    run_id: str
    run_name: str
    why: str
    series: dict[str, list[tuple[float, float, float]]]
    methods: dict[str, str]

    def to_dict(self) -> dict[str, Any]:
        """JSON shape."""
        return {
            "run_id": self.run_id,
            "run_name": self.run_name,
            "why": self.why,
            "methods": self.methods,
            "series": {
                comp: [{"t_s": t, "power_w": p, "energy_j": e} for t, p, e in points]
                for comp, points in self.series.items()
            },
        }


@dataclasses.dataclass(frozen=True)
class RoleTotal:
    """Cost of one role (final, tuning, failed, ...) in the project view."""

    role: str
    runs: int
    energy_j: float
    co2e_g: float
    duration_s: float

    def to_dict(self) -> dict[str, Any]:
        """JSON shape."""
        return {**dataclasses.asdict(self), "label": ROLE_LABELS.get(self.role, self.role)}


@dataclasses.dataclass(frozen=True)
class GroupTotal:
    """Cost of the counted runs of one user, host, tag or month. Units in the names.

    Attributes:
        group: The value (``None``: runs without one, e.g. untagged or an old run with no
            user recorded).
        final_co2e_g: The part of ``co2e_g`` spent by finished final runs.
    """

    group: str | None
    runs: int
    energy_j: float
    co2e_g: float
    duration_s: float
    final_co2e_g: float

    def to_dict(self) -> dict[str, Any]:
        """JSON shape."""
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class StudyTotal:
    """One tuning study as a table row of the project view.

    Attributes:
        shown: Whether the study is also shown in full (in :attr:`Report.studies`).
        best_value: The study's recorded best objective value, if it recorded one.
    """

    id: str
    name: str
    trials: int
    energy_j: float
    co2e_g: float
    best_value: float | None
    shown: bool

    def to_dict(self) -> dict[str, Any]:
        """JSON shape."""
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class ProjectView:
    """Where the cost went and what was saved.

    Attributes:
        by_role: Totals per role, in :data:`ROLES` order, roles with runs only.
        cumulative: ``(time, role, cumulative co2e_g of that role)`` by time: one point per
            counted run (at its end), or for a summarised project one per time bucket (at
            the end of the bucket's last run), so the chart stays small.
        not_final_share: Share of the carbon spent outside final runs.
        saved_by_pruning: ``energy_j``, ``co2e_g``, ``studies`` avoided by stopping trials
            early (from the studies' summaries); zeros when no study recorded any.
        saved_by_reuse: ``energy_j``, ``co2e_g``, ``hits`` avoided by cache hits (from the
            footprint); zeros when nothing was reused.
        groups: Totals of the counted runs per user, host, tag (a run counts once per tag)
            and UTC month of its start, largest carbon first.
        top_runs: The counted runs that used the most energy (:data:`TOP_RUNS`).
        studies: Every study in scope, most energy first.
        summarised: Whether the project has more than :data:`LARGE_PROJECT_RUNS` counted
            runs and is shown summarised.
        bucket: ``"month"`` or ``"day"`` when ``cumulative`` is per time bucket, else None.
        counted_runs: How many runs are counted.
    """

    by_role: list[RoleTotal]
    cumulative: list[tuple[float, str, float]]
    not_final_share: float
    saved_by_pruning: dict[str, float]
    saved_by_reuse: dict[str, float]
    groups: dict[str, list[GroupTotal]] = dataclasses.field(default_factory=dict)
    top_runs: list[RunSummary] = dataclasses.field(default_factory=list)
    studies: list[StudyTotal] = dataclasses.field(default_factory=list)
    summarised: bool = False
    bucket: str | None = None
    counted_runs: int = 0

    def to_dict(self) -> dict[str, Any]:
        """JSON shape."""
        return {
            "by_role": [r.to_dict() for r in self.by_role],
            "cumulative": [
                {"at": _iso(t), "role": role, "co2e_g": g} for t, role, g in self.cumulative
            ],
            "not_final_share": self.not_final_share,
            "saved_by_pruning": self.saved_by_pruning,
            "saved_by_reuse": self.saved_by_reuse,
            "groups": {k: [g.to_dict() for g in v] for k, v in self.groups.items()},
            "top_runs": [
                {"id": r.id, "name": r.name, "role": r.role, "status": r.status,
                 "energy_j": r.energy_j, "co2e_g": r.co2e_g, "duration_s": r.duration_s}
                for r in self.top_runs
            ],
            "studies": [s.to_dict() for s in self.studies],
            "summarised": self.summarised,
            "bucket": self.bucket,
            "counted_runs": self.counted_runs,
        }  # fmt: skip


@dataclasses.dataclass(frozen=True)
class StudyPoint:
    """One trial on the accuracy-versus-energy plane.

    Attributes:
        state: The trial's own state where the tuner recorded one (``complete``,
            ``pruned``, ``fail``), else the run's status.
        complete: Whether the trial ran to the end (pruned and failed ones did not; their
            value is the last one they reported).
    """

    run_id: str
    name: str
    status: str
    state: str
    complete: bool
    energy_j: float
    value: float
    on_front: bool
    is_best: bool

    def to_dict(self) -> dict[str, Any]:
        """JSON shape."""
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class StudyView:
    """A tuning study: its trials' objective against their energy.

    Attributes:
        id: The study driver run's id.
        name: Its name.
        metric: The objective plotted.
        direction: ``maximize`` or ``minimize``.
        points: Trials with a value for ``metric``.
        trials: All trials, with or without a value.
        study: The driver's study record as recorded (empty for a driver without one).
        front_source: ``"recorded"`` (the study's ``pareto_run_ids``) or ``"computed"``.
    """

    id: str
    name: str
    metric: str | None
    direction: str
    points: list[StudyPoint]
    trials: int
    study: StudyRecord
    front_source: str

    @property
    def summary(self) -> dict[str, Any]:
        """The study record as JSON (the driver's ``extra.study``)."""
        return self.study.to_record()

    @property
    def fidelity(self) -> str | None:
        """What the pruner's step was, in one line (``wattwise.tuning.fidelity_line``), or
        None for a study recorded without it."""
        return fidelity_line(self.study)

    def to_dict(self) -> dict[str, Any]:
        """JSON shape (the study record under ``summary``)."""
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        data.pop("study")
        data["points"] = [p.to_dict() for p in self.points]
        data["summary"] = self.summary
        return data


@dataclasses.dataclass(frozen=True)
class Setup:
    """Hardware, location, intensity, PUE and meters, each distinct entry with a run count."""

    hardware: list[dict[str, Any]]
    locations: list[dict[str, Any]]
    intensities: list[dict[str, Any]]
    pues: list[dict[str, Any]]
    meters: list[dict[str, Any]]
    attribution: dict[str, str] = dataclasses.field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON shape."""
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class Report:
    """Everything a report shows. Renderers format it; nothing here is HTML.

    Attributes:
        scope: ``run``, ``study`` or ``project``.
        title: Heading.
        subject_id: The run or study id (None for the project).
        generated_at: Unix seconds.
        tool_version: wattwise version.
        store_path: The ledger read.
        headline: Top figures.
        includes: What the headline figures include.
        excludes: What they leave out.
        timeline: Power per component of one run, or None without samples.
        project: The project view (cost by role, cumulative carbon, savings).
        studies: Studies in scope, with their accuracy-versus-energy points.
        runs: The runs, oldest first.
        setup: Hardware and location with sources.
        sci: The SCI per functional unit, or None if it could not be computed.
        credits: Data files and the attributions their licences require.
        notes: Caveats the reader must see (guessed locations, mixed scopes, ...).
        curves: Learning curves of the runs shown (at most
            :data:`~wattwise.report._curves.MAX_CURVE_RUNS`), newest first.
    """

    scope: Scope
    title: str
    subject_id: str | None
    generated_at: float
    tool_version: str
    store_path: str
    headline: Headline
    includes: list[str]
    excludes: list[str]
    timeline: Timeline | None
    project: ProjectView
    studies: list[StudyView]
    runs: list[RunSummary]
    setup: Setup
    sci: SciResult | None
    credits: list[DataCredit]
    notes: list[str]
    curves: list[RunCurves] = dataclasses.field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-ready data (``wattwise report --format json``)."""
        return {
            "wattwise_report_version": "1",
            "scope": self.scope,
            "title": self.title,
            "subject_id": self.subject_id,
            "generated_at": _iso(self.generated_at),
            "tool": {"name": "wattwise", "version": self.tool_version},
            "store": self.store_path,
            "headline": self.headline.to_dict(),
            "includes": self.includes,
            "excludes": self.excludes,
            "timeline": self.timeline.to_dict() if self.timeline else None,
            "project": self.project.to_dict(),
            "studies": [s.to_dict() for s in self.studies],
            "runs": [r.to_dict() for r in self.runs],
            "setup": self.setup.to_dict(),
            "sci": self.sci.to_dict() if self.sci else None,
            "data_credits": [c.to_dict() for c in self.credits],
            "notes": self.notes,
            "curves": [c.to_dict() for c in self.curves],
        }


def _iso(timestamp: float | None) -> str | None:
    from wattwise.store import iso_utc

    return iso_utc(timestamp)


# -- building ------------------------------------------------------------------


def _summary(run: RunRecord, counted: bool, last_metrics: Mapping[str, float]) -> RunSummary:
    rec = run.record
    flops_total, samples_total = _flops_of(rec)
    pue = (rec.get("pue") or {}).get("value")
    intensity = (rec.get("intensity") or {}).get("g_per_kwh")
    metrics = dict(rec.get("summary") or {})
    metrics.update(last_metrics)
    status = run.status.value
    return RunSummary(
        id=run.id, name=run.name, kind=run.kind, status=status,
        role=footprint_role(declared_role(run), status),
        counted=counted, started_at=run.started_at, ended_at=run.ended_at,
        duration_s=run.duration_s, energy_j=run.energy_j, energy_band_j=run.energy_band_j,
        machine_energy_j=run.machine_energy_j, co2e_g=run.co2e_g, co2e_band_g=run.co2e_band_g,
        region=run.region, parent_id=run.parent_id, study_id=run.study_id,
        methods={c.component: c.method for c in run.components},
        meters={c.component: c.meter for c in run.components},
        pue=float(pue) if isinstance(pue, (int, float)) else None,
        intensity_g_per_kwh=float(intensity) if isinstance(intensity, (int, float)) else None,
        flops_total=flops_total, samples_total=samples_total,
        metrics={k: float(v) for k, v in metrics.items() if isinstance(v, (int, float))},
        tags=list(run.tags), params=dict(run.params),
    )  # fmt: skip


def _shown(
    scope: Scope, runs: Sequence[RunRecord], counted_ids: set[str],
    drivers: Sequence[RunRecord],
) -> tuple[list[RunRecord], list[str] | None]:
    """Study drivers shown in full, and the runs whose metrics are read (None: all).

    A summarised project (more than :data:`LARGE_PROJECT_RUNS` counted runs) shows the
    :data:`TOP_STUDIES` studies that used the most energy in full, and reads metrics only
    for the runs it shows: those, the newest :data:`MAX_TABLE_RUNS` runs and the
    :data:`TOP_RUNS` runs that used the most energy.
    """
    if scope != "project" or len(counted_ids) <= LARGE_PROJECT_RUNS:
        return list(drivers), None
    energy: dict[str, float] = {d.id: 0.0 for d in drivers}
    for r in runs:
        if r.study_id in energy:
            energy[r.study_id] += r.energy_j
    shown = sorted(drivers, key=lambda d: (-energy[d.id], d.id))[:TOP_STUDIES]
    keep = {d.id for d in shown}
    wanted = {r.id for r in runs if r.study_id in keep}
    wanted.update(r.id for r in runs[-MAX_TABLE_RUNS:])
    counted = [r for r in runs if r.id in counted_ids]
    wanted.update(r.id for r in sorted(counted, key=lambda r: -r.energy_j)[:TOP_RUNS])
    return shown, [r.id for r in runs if r.id in wanted]


def _metrics_of(store: BaseRunStore, run_ids: Sequence[str]) -> dict[str, dict[str, float]]:
    """The last value of each metric of each run, read in bulk where the store can."""
    return last_metrics(store, run_ids)


def _headline(runs: Sequence[RunRecord], summaries: Sequence[RunSummary]) -> Headline:
    counted = [r for r, s in zip(runs, summaries, strict=True) if s.counted]
    comps: dict[str, dict[str, Any]] = {}
    for run in counted:
        for c in run.components:
            entry = comps.setdefault(
                c.component,
                {"energy": 0.0, "band": 0.0, "known": True, "methods": set(), "meters": set(),
                 "sources": set()},
            )  # fmt: skip
            entry["energy"] += c.energy_j
            if c.band_j is None:
                entry["known"] = False
            else:
                entry["band"] += c.band_j
            entry["methods"].add(c.method)
            entry["meters"].add(c.meter)
            if c.source:
                entry["sources"].add(c.source)
    components = [
        ComponentTotal(
            component=name, energy_j=e["energy"], band_j=e["band"] if e["known"] else None,
            methods=sorted(e["methods"]), meters=sorted(e["meters"]),
            sources=sorted(e["sources"]),
        )
        for name, e in sorted(comps.items(), key=lambda kv: -kv[1]["energy"])
    ]
    counted_s = [s for s in summaries if s.counted]
    with_flops = [s for s in counted_s if s.flops_total is not None]
    with_samples = [s for s in counted_s if s.samples_total is not None]
    flops_total = sum(s.flops_total or 0.0 for s in with_flops) if with_flops else None
    flops_energy = sum(s.energy_j for s in with_flops)
    samples_total = sum(s.samples_total or 0.0 for s in with_samples) if with_samples else None
    samples_energy = sum(s.energy_j for s in with_samples)
    facility = sum(s.energy_j * (s.pue if s.pue is not None else 1.0) for s in counted_s)
    return Headline(
        runs=len(summaries),
        counted_runs=len(counted_s),
        duration_s=sum(s.duration_s for s in counted_s),
        energy_j=sum(s.energy_j for s in counted_s),
        energy_band_j=sum(s.energy_band_j for s in counted_s),
        band_complete=all(c.band_j is not None for c in components),
        facility_energy_j=facility,
        co2e_g=sum(s.co2e_g for s in counted_s),
        co2e_band_g=sum(s.co2e_band_g for s in counted_s),
        machine_energy_j=sum(s.machine_energy_j for s in counted_s),
        components=components,
        flops_total=flops_total,
        flops_runs=len(with_flops),
        flops_per_j=flops_total / flops_energy if flops_total and flops_energy > 0 else None,
        samples_total=samples_total,
        samples_per_j=(
            samples_total / samples_energy if samples_total and samples_energy > 0 else None
        ),
        first_started_at=min((s.started_at for s in counted_s), default=None),
        last_ended_at=max((s.end_time for s in counted_s), default=None),
    )


def _includes(headline: Headline, summaries: Sequence[RunSummary],
              runs: Sequence[RunRecord]) -> tuple[list[str], list[str]]:  # fmt: skip
    includes: list[str] = []
    excludes: list[str] = []
    for comp in headline.components:
        band = (
            f" ± {units.energy(comp.band_j)}" if comp.band_j else
            (" (band not quantified)" if comp.band_j is None else "")
        )  # fmt: skip
        includes.append(
            f"{comp.component.upper()} energy of the tracked process tree: "
            f"{units.energy(comp.energy_j)}{band}, {comp.label} "
            f"({', '.join(comp.meters)})"
        )
    pues = sorted({s.pue for s in summaries if s.counted and s.pue is not None})
    if pues == [1.0]:
        includes.append(
            "PUE 1.0: no data-centre overhead counted (own hardware; pass --pue to count one)"
        )
    elif pues:
        includes.append(
            f"Data-centre overhead: PUE {', '.join(f'{p:g}' for p in pues)} applied to carbon"
        )
    counted = [s for s in summaries if s.counted]
    by_status: dict[str, int] = {}
    for s in counted:
        by_status[s.status] = by_status.get(s.status, 0) + 1
    not_finished = {k: v for k, v in by_status.items() if k != "finished"}
    if not_finished:
        parts = ", ".join(f"{v} {k}" for k, v in sorted(not_finished.items()))
        includes.append(f"Runs that did not finish: {parts} (cost up to their last record)")
    elif len(counted) > 1:
        includes.append(f"All {len(counted)} runs in scope (none failed)")
    if any(r.record.get("idle_included") for r in runs):
        includes.append("A share of idle CPU power (split among busy processes by CPU time)")
    includes.extend(covers_lines(r.record for r in runs))
    nested = len(summaries) - len(counted)
    if nested:
        includes.append(f"{nested} nested run(s) are shown but counted inside their parent")
    excludes.append(
        "Embodied emissions of the hardware (manufacturing): reported separately as SCI M"
    )
    comps = {c.component for c in headline.components}
    if "gpu" not in comps:
        excludes.append("GPUs: none was metered")
    excludes.append("Network, storage and other machines (not metered)")
    excludes.append("Market-based instruments (offsets, RECs, PPAs): never applied")
    return includes, excludes


def _timeline(
    store: BaseRunStore, runs: Sequence[RunRecord], subject: RunRecord | None
) -> Timeline | None:
    candidates: list[tuple[RunRecord, str]] = []
    if subject is not None:
        candidates.append((subject, "this run"))
    ranked = sorted(runs, key=lambda r: -r.energy_j)
    candidates += [(r, "the run that used the most energy") for r in ranked[:5]]
    for run, why in candidates:
        samples = store.samples(run.id)
        if not samples:
            continue
        series: dict[str, list[tuple[float, float, float]]] = {}
        for t_s, comp, power_w, energy_j in samples:
            series.setdefault(comp, []).append((t_s, power_w, energy_j))
        return Timeline(
            run_id=run.id, run_name=run.name, why=why, series=series,
            methods={c.component: c.method for c in run.components},
        )  # fmt: skip
    return None


def _saved_by_pruning(runs: Sequence[RunRecord]) -> dict[str, float]:
    energy = co2e = 0.0
    studies = 0
    for run in runs:
        study = StudyRecord.from_record(run.record)
        if study is None:
            continue
        e, g = study.avoided_energy_j, study.avoided_co2e_g
        if e is not None or g is not None:
            studies += 1
            energy += e or 0.0
            co2e += g or 0.0
    return {"energy_j": energy, "co2e_g": co2e, "studies": float(studies)}


def _saved_by_reuse(
    store: BaseRunStore, scope: Scope, runs: Sequence[RunRecord]
) -> dict[str, float]:
    """What cache hits avoided: the whole ledger's for a project, else the hits consumed
    by the runs in scope. Zeros when the ledger records no reuse."""
    if scope == "project":
        totals = store.reuse_totals()
        return {"energy_j": float(totals.energy_j), "co2e_g": float(totals.co2e_g),
                "hits": float(totals.hits)}  # fmt: skip
    hits = [h for r in runs for h in store.reuse_events(consumer_run_id=r.id)]
    return {
        "energy_j": sum(float(h.energy_avoided_j) for h in hits),
        "co2e_g": sum(float(h.co2e_avoided_g) for h in hits),
        "hits": float(len(hits)),
    }


def _month(timestamp: float) -> str:
    return time.strftime("%Y-%m", time.gmtime(timestamp))


def _day(timestamp: float) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(timestamp))


def _groups(
    runs: Sequence[RunRecord], summaries: Sequence[RunSummary]
) -> dict[str, list[GroupTotal]]:
    """Totals of the counted runs per user, host, tag and month, largest carbon first."""
    sums: dict[str, dict[str | None, list[float]]] = {g: {} for g in GROUPINGS}
    by_user, by_host, by_tag, by_month = (sums[g] for g in GROUPINGS)
    months: dict[int, str] = {}  # started_at // 1 day -> "YYYY-MM", computed once per day

    for run, s in zip(runs, summaries, strict=True):
        if not s.counted:
            continue
        final = s.co2e_g if s.role == "final" and s.status == "finished" else 0.0
        day = int(run.started_at // 86400)
        month = months.get(day)
        if month is None:
            month = months[day] = _month(run.started_at)
        tags: Sequence[str | None] = tuple(dict.fromkeys(run.tags)) if run.tags else (None,)
        pairs = [(by_user, run.user or None), (by_host, run.host or None), (by_month, month)]
        pairs += [(by_tag, tag) for tag in tags]
        for table, value in pairs:
            t = table.get(value)
            if t is None:
                table[value] = [1, s.energy_j, s.co2e_g, s.duration_s, final]
            else:
                t[0] += 1
                t[1] += s.energy_j
                t[2] += s.co2e_g
                t[3] += s.duration_s
                t[4] += final
    out: dict[str, list[GroupTotal]] = {}
    for grouping, groups in sums.items():
        rows = [
            GroupTotal(group=k, runs=int(v[0]), energy_j=v[1], co2e_g=v[2], duration_s=v[3],
                       final_co2e_g=v[4])
            for k, v in groups.items()
        ]  # fmt: skip
        if grouping == "month":
            rows.sort(key=lambda g: g.group or "")
        else:
            rows.sort(key=lambda g: (g.group is None, -g.co2e_g, g.group or ""))
        out[grouping] = rows
    return out


def _cumulative(
    counted: Sequence[RunSummary], summarised: bool
) -> tuple[list[tuple[float, str, float]], str | None]:
    """Cumulative carbon per role, per run or (summarised) per time bucket."""
    ordered = sorted(((s.end_time, s) for s in counted), key=lambda pair: pair[0])
    bucket: str | None = None
    label = None
    if summarised and ordered:
        span = ordered[-1][0] - ordered[0][0]
        bucket = "month" if span > 62 * 86400 else "day"
        label = _month if bucket == "month" else _day
    running: dict[str, float] = {}
    points: list[tuple[float, str, float]] = []
    last: dict[str, tuple[str, int]] = {}  # role -> (bucket, index of its point)
    labels: dict[int, str] = {}  # end // 1 day -> its bucket, computed once per day
    for end, s in ordered:
        running[s.role] = running.get(s.role, 0.0) + s.co2e_g
        point = (end, s.role, running[s.role])
        if label is None:
            points.append(point)
            continue
        day = int(end // 86400)
        key = labels.get(day)
        if key is None:
            key = labels[day] = label(end)
        seen = last.get(s.role)
        if seen is not None and seen[0] == key:
            points[seen[1]] = point  # the bucket's point moves to its last run's end
        else:
            last[s.role] = (key, len(points))
            points.append(point)
    return points, bucket


def _study_totals(
    drivers: Sequence[RunRecord], summaries: Sequence[RunSummary], shown: set[str]
) -> list[StudyTotal]:
    members: dict[str, list[RunSummary]] = {d.id: [] for d in drivers}
    for s in summaries:
        if s.study_id in members and s.id != s.study_id:
            members[s.study_id].append(s)
    by_id = {s.id: s for s in summaries}
    out = []
    for d in drivers:
        trials = members[d.id]
        own = by_id.get(d.id)
        energy = sum(t.energy_j for t in trials) + (own.energy_j if own else 0.0)
        co2e = sum(t.co2e_g for t in trials) + (own.co2e_g if own else 0.0)
        study = StudyRecord.from_record(d.record)
        best = (study.best or {}).get("value") if study is not None else None
        out.append(StudyTotal(
            id=d.id, name=d.name, trials=len(trials), energy_j=energy, co2e_g=co2e,
            best_value=float(best) if isinstance(best, (int, float)) else None,
            shown=d.id in shown,
        ))  # fmt: skip
    out.sort(key=lambda t: -t.energy_j)
    return out


def _project(
    store: BaseRunStore, scope: Scope, runs: Sequence[RunRecord],
    summaries: Sequence[RunSummary], drivers: Sequence[RunRecord] = (),
    shown_studies: set[str] | None = None,
) -> ProjectView:
    counted = [s for s in summaries if s.counted]
    summarised = scope == "project" and len(counted) > LARGE_PROJECT_RUNS
    totals: dict[str, list[float]] = {}
    for s in counted:
        t = totals.setdefault(s.role, [0, 0.0, 0.0, 0.0])
        t[0] += 1
        t[1] += s.energy_j
        t[2] += s.co2e_g
        t[3] += s.duration_s
    order = [*ROLES, *sorted(set(totals) - set(ROLES))]  # a role this version does not know
    by_role = [
        RoleTotal(role=role, runs=int(v[0]), energy_j=v[1], co2e_g=v[2], duration_s=v[3])
        for role in order
        for v in [totals.get(role)]
        if v is not None
    ]
    cumulative, bucket = _cumulative(counted, summarised)
    total = sum(s.co2e_g for s in counted)
    final = sum(s.co2e_g for s in counted if s.role == "final")
    shown = {d.id for d in drivers} if shown_studies is None else shown_studies
    return ProjectView(
        by_role=by_role,
        cumulative=cumulative,
        not_final_share=1 - final / total if total > 0 else 0.0,
        # Only study drivers carry a study record; a project's drivers are all of them.
        saved_by_pruning=_saved_by_pruning(drivers if scope == "project" else runs),
        saved_by_reuse=_saved_by_reuse(store, scope, runs),
        groups=_groups(runs, summaries) if scope == "project" else {},
        top_runs=sorted(counted, key=lambda s: (-s.energy_j, s.id))[:TOP_RUNS],
        studies=_study_totals(drivers, summaries, shown),
        summarised=summarised, bucket=bucket, counted_runs=len(counted),
    )  # fmt: skip


def _curves(
    store: BaseRunStore, scope: Scope, runs: Sequence[RunRecord],
    summaries: Sequence[RunSummary], subject: RunRecord | None, studies: Sequence[StudyView],
) -> list[RunCurves]:
    """Learning curves of at most :data:`MAX_CURVE_RUNS` runs shown, their points read
    for those runs only: the run and its nested runs; a study's best trial, its front and
    its newest trials; else the newest runs that logged a metric of the user's."""
    by_id = {s.id: s for s in summaries}
    records = {r.id: r for r in runs}
    if scope == "run" and subject is not None:
        order = [r.id for r in runs]
    elif scope == "study":
        view = studies[0] if studies else None
        best = [p.run_id for p in view.points if p.is_best] if view else []
        front = [p.run_id for p in view.points if p.on_front] if view else []
        order = [*best, *front, *(s.id for s in reversed(summaries))]
    else:
        order = [s.id for s in reversed(summaries)]
    study_metric = {v.id: v.metric for v in studies}
    candidates = []
    for run_id in dict.fromkeys(order):
        s = by_id[run_id]
        if s.kind == "study" or not any(
            is_user_metric(k) or (k == "value" and s.kind == "trial") for k in s.metrics
        ):
            continue
        candidates.append(records[run_id])
        if len(candidates) >= 2 * MAX_CURVE_RUNS:
            break
    out: list[RunCurves] = []
    points: dict[str, list[tuple[int | None, str, float, float]]] = {}
    for run_id, step, key, value, at in store.iter_metrics([r.id for r in candidates]):
        points.setdefault(run_id, []).append((step, key, value, at))
    for run in candidates:
        metric = study_metric.get(run.study_id or "")
        if metric in (None, "objective", "value"):
            metric = None
        found = run_curves(store, run, by_id[run.id].role, metric, points.get(run.id, []))
        if found is not None:
            out.append(found)
        if len(out) >= MAX_CURVE_RUNS:
            break
    return out


def study_metric_label(view: StudyView, runs: Sequence[RunSummary]) -> str:
    """What the plotted value is called: the metric's own name, or for tuning's internal
    ``objective``/``value`` the user's metric that holds the same value in every trial
    that logged it (else the study's recorded metric, else ``objective``)."""
    metric = view.metric or "objective"
    if metric not in ("objective", "value"):
        return metric
    if view.study.metric and view.study.metric not in ("objective", "value"):
        return view.study.metric
    by_id = {r.id: r for r in runs}
    matches: dict[str, int] = {}
    clash: set[str] = set()
    for p in view.points:
        run = by_id.get(p.run_id)
        for key, value in (run.metrics if run is not None else {}).items():
            if not is_user_metric(key):
                continue
            if abs(value - p.value) <= 1e-9 * max(1.0, abs(p.value)):
                matches[key] = matches.get(key, 0) + 1
            else:
                clash.add(key)
    found = sorted((k for k in matches if k not in clash), key=lambda k: (-matches[k], k))
    return f"{found[0]} (objective)" if found else "objective"


def _direction(metric: str, study: StudyRecord) -> str:
    if study.direction is not None:
        return study.direction
    name = metric.lower()
    if any(h in name for h in _MAXIMIZE_HINTS):
        return "maximize"
    if any(h in name for h in _MINIMIZE_HINTS):
        return "minimize"
    return "maximize"


NOT_OBJECTIVE_PREFIXES = ("energy", "co2e", "epoch", "learning_rate", "lr", "grad_norm", "step")


def _pick_metric(trials: Sequence[RunSummary], study: StudyRecord) -> str | None:
    if study.metric is not None and any(study.metric in t.metrics for t in trials):
        return study.metric
    if any("objective" in t.metrics for t in trials):
        return "objective"  # what wattwise.tune logs as each trial's final value
    counts: dict[str, int] = {}
    for t in trials:
        for key in t.metrics:
            if not key.lower().startswith(NOT_OBJECTIVE_PREFIXES):
                counts[key] = counts.get(key, 0) + 1
    if not counts:
        return None

    def rank(key: str) -> tuple[int, int, str]:
        low = key.lower()
        hinted = any(h in low for h in _MAXIMIZE_HINTS) or any(h in low for h in _MINIMIZE_HINTS)
        return (-counts[key], 0 if hinted else 1, key)

    return min(counts, key=rank)


def _trial_value(
    summary: RunSummary, record: Mapping[str, Any], metric: str | None
) -> tuple[float | None, str, bool]:
    """``(value, state, complete)`` of a trial for the plot."""
    trial = TrialRecord.from_record(record)
    state = trial.state if trial is not None else summary.status
    complete = state in ("complete", "finished")
    value = summary.metrics.get(metric) if metric is not None else None
    if value is None and metric in ("objective", "value") and trial is not None:
        value = trial.last_value
    return value, state, complete


def _study_view(
    driver: RunRecord, trials: Sequence[RunSummary], records: Mapping[str, RunRecord],
    metric: str | None,
) -> StudyView:
    study = StudyRecord.from_record(driver.record) or StudyRecord()
    chosen = metric if metric is not None else _pick_metric(trials, study)
    direction = _direction(chosen or "", study)
    raw = []
    for t in trials:
        value, state, complete = _trial_value(t, records[t.id].record, chosen)
        if value is not None:
            raw.append((t, value, state, complete))
    if study.pareto_run_ids:
        front = set(study.pareto_run_ids)
        front_source = "recorded"
    else:
        on_front = pareto_front(
            [(t.id, t.energy_j, v) for t, v, _s, complete in raw if complete],
            value=lambda p: p[2], energy_j=lambda p: p[1], direction=direction,
        )  # fmt: skip
        front = {pid for pid, _e, _v in on_front}
        front_source = "computed"
    best = study.best_run_id
    points = [
        StudyPoint(run_id=t.id, name=t.name, status=t.status, state=state, complete=complete,
                   energy_j=t.energy_j, value=v, on_front=t.id in front, is_best=t.id == best)
        for t, v, state, complete in raw
    ]  # fmt: skip
    return StudyView(
        id=driver.id, name=driver.name, metric=chosen, direction=direction, points=points,
        trials=len(trials), study=study, front_source=front_source,
    )  # fmt: skip


def _frozen(value: Any) -> Any:
    """A hashable key equal for equal JSON values (dicts by their items, lists in order)."""
    if isinstance(value, Mapping):
        return ("{", tuple(sorted((str(k), _frozen(v)) for k, v in value.items())))
    if isinstance(value, (list, tuple)):
        return ("[", tuple(_frozen(v) for v in value))
    if isinstance(value, float) and value != value:
        return (float, "nan")  # NaN equals itself in JSON text
    if isinstance(value, (str, int, float, bool)) or value is None:
        return (type(value), value)  # 1, 1.0 and True differ in JSON text
    return (str, str(value))  # as json.dumps(default=str) would write it


def _distinct(items: Sequence[tuple[dict[str, Any], int]]) -> list[dict[str, Any]]:
    """Each distinct item once, first seen first, with how many runs had it (``runs``)."""
    seen: dict[Any, dict[str, Any]] = {}
    for item, runs in items:
        key = _frozen(item)
        if key in seen:
            seen[key]["runs"] += runs
        else:
            seen[key] = {**item, "runs": runs}
    return list(seen.values())


#: The record keys the setup reads.
SETUP_KEYS = ("attribution", "hardware", "location", "intensity", "pue", "meters")


def _setup(runs: Sequence[RunRecord]) -> Setup:
    """The setup of these runs (oldest first), read run by run."""
    return _setup_of(
        (run.host, {c.component for c in run.components}, run.record, 1) for run in runs
    )


def _project_setup(store: BaseRunStore) -> Setup:
    """The whole ledger's setup, from the store's groups of runs that share it."""
    return _setup_of(
        (g.host, set(g.components), g.values, g.runs) for g in store.record_groups(SETUP_KEYS)
    )


def _setup_of(entries: Iterable[tuple[str, set[str], Mapping[str, Any], int]]) -> Setup:
    """Setup from ``(host, components, record, runs)`` entries, oldest first: each distinct
    hardware, location, intensity, PUE and meter with the number of runs that had it."""
    hardware: list[tuple[dict[str, Any], int]] = []
    locations: list[tuple[dict[str, Any], int]] = []
    intensities: list[tuple[dict[str, Any], int]] = []
    pues: list[tuple[dict[str, Any], int]] = []
    meters: list[tuple[dict[str, Any], int]] = []
    attribution: dict[str, str] = {}
    for host, components, rec, n in entries:
        for comp, text in (rec.get("attribution") or {}).items():
            if comp in components:
                attribution.setdefault(str(comp), str(text))
        hw = rec.get("hardware")
        if isinstance(hw, Mapping) and hw:
            cpu = hw.get("cpu") if isinstance(hw.get("cpu"), Mapping) else {}
            gpus_raw = hw.get("gpus")
            gpus: list[Any] = gpus_raw if isinstance(gpus_raw, list) else []
            hardware.append(({
                "host": host,
                "cpu": cpu.get("model_name") if isinstance(cpu, Mapping) else None,
                "microarchitecture": cpu.get("microarchitecture")
                if isinstance(cpu, Mapping) else None,
                "sockets": cpu.get("sockets") if isinstance(cpu, Mapping) else None,
                "threads": cpu.get("threads") if isinstance(cpu, Mapping) else None,
                "virtual": cpu.get("is_virtual") if isinstance(cpu, Mapping) else None,
                "ram_gb": hw.get("ram_gb"),
                "gpus": [str(g.get("name")) for g in gpus if isinstance(g, Mapping)],
                "accelerator": hw.get("accelerator"),
            }, n))  # fmt: skip
        loc = rec.get("location")
        if isinstance(loc, Mapping) and loc:
            locations.append(({k: loc.get(k) for k in (
                "display_name", "zone", "country_iso2", "cloud_provider", "cloud_region", "how",
                "warning")}, n))  # fmt: skip
        inten = rec.get("intensity")
        if isinstance(inten, Mapping) and inten:
            intensities.append(({k: inten.get(k) for k in (
                "g_per_kwh", "scope", "intensity_type", "year", "dataset", "file", "zone",
                "source", "licence", "note", "temporal_granularity")}, n))  # fmt: skip
        pue = rec.get("pue")
        if isinstance(pue, Mapping) and pue:
            pues.append(({k: pue.get(k) for k in ("value", "source", "applies_to")}, n))
        for name, info in (rec.get("meters") or {}).items():
            if isinstance(info, Mapping):
                meters.append(({
                    "meter": name, "method": info.get("method"), "source": info.get("source"),
                    "band_fraction": info.get("band_fraction"),
                    "band_source": info.get("band_source"),
                    "covers": (info.get("details") or {}).get("covers"),
                    "assumptions": list(info.get("assumptions") or []),
                }, n))  # fmt: skip
    return Setup(
        hardware=_distinct(hardware), locations=_distinct(locations),
        intensities=_distinct(intensities), pues=_distinct(pues), meters=_distinct(meters),
        attribution=attribution,
    )  # fmt: skip


def _credits(
    store: BaseRunStore, scope: Scope, runs: Sequence[RunRecord], sci: SciResult | None
) -> list[DataCredit]:
    """The data credits: files the records name, searched by the store for a project."""
    extra = list(sci.data_files) if sci else []
    if scope != "project":
        return data_credits([r.record for r in runs], extra_files=extra)
    files = [file for file, *_ in CREDITED_FILES]
    named = store.record_mentions([*files, *(f.rsplit("/", 1)[-1] for f in files)])
    extra += [f for f in files if f in named or f.rsplit("/", 1)[-1] in named]
    return data_credits([], extra_files=extra)


def _notes(runs: Sequence[RunRecord], setup: Setup) -> list[str]:
    notes = []
    scopes = {i.get("scope") for i in setup.intensities}
    if len(scopes) > 1:
        notes.append(
            "Runs were charged at intensities of different scopes (life cycle and direct); "
            "their carbon figures are not comparable with each other (SCI baseline rule)."
        )
    for loc in setup.locations:
        if loc.get("warning"):
            notes.append(f"Location of {loc['runs']} run(s): {loc['warning']}")
    running = [r for r in runs if str(r.status) == "running"]
    if running:
        notes.append(
            f"{len(running)} run(s) are still running; their figures are as last flushed."
        )
    return notes


def _roots(runs: Sequence[RunRecord]) -> set[str]:
    ids = {r.id for r in runs}
    return {r.id for r in runs if r.parent_id is None or r.parent_id not in ids}


def _select(
    store: BaseRunStore, run: str | None, study: str | None
) -> tuple[Scope, list[RunRecord], RunRecord | None, list[RunRecord]]:
    """Scope, runs in it, the subject run, and study drivers in it."""
    if run is not None and study is not None:
        msg = "Give a run or a study, not both (got run and --study)."
        raise InvalidParameterError(msg)
    if study is not None:
        driver = store.get_run(study)
        members = [r for r in store.list_runs(study_id=driver.id) if r.id != driver.id]
        if not members and StudyRecord.from_record(driver.record) is None:
            msg = (
                f"Run {driver.id[:12]!r} ({driver.name!r}) is not a tuning study: no trials "
                "name it as their study. Pass it as a run, or list studies with 'wattwise runs'."
            )
            raise RunNotFoundError(msg)
        return "study", [driver, *members], driver, [driver]
    if run is not None:
        subject = store.get_run(run)
        if subject.kind == "study" or store.list_runs(study_id=subject.id):
            members = [r for r in store.list_runs(study_id=subject.id) if r.id != subject.id]
            return "study", [subject, *members], subject, [subject]
        everything = store.list_runs()
        children = _descendants(subject.id, everything)
        return "run", [subject, *children], subject, []
    everything = store.list_runs()
    named = {r.study_id for r in everything if r.study_id is not None}
    drivers = [
        r for r in everything
        if r.kind == "study" or r.id in named or StudyRecord.from_record(r.record) is not None
    ]  # fmt: skip
    return "project", everything, None, drivers


def _descendants(root: str, runs: Sequence[RunRecord]) -> list[RunRecord]:
    out, frontier = [], {root}
    while frontier:
        nxt = [r for r in runs if r.parent_id in frontier]
        out += nxt
        frontier = {r.id for r in nxt}
    return out


@dataclasses.dataclass(frozen=True)
class Selection:
    """The runs a report or an export covers.

    Attributes:
        scope: ``run``, ``study`` or ``project``.
        runs: Every run in scope, oldest first (nested runs included).
        counted: The runs whose cost is summed (nested runs are inside their parent).
        subject: The run or study driver asked for, or None for the project.
        drivers: Study driver runs in scope.
    """

    scope: Scope
    runs: list[RunRecord]
    counted: list[RunRecord]
    subject: RunRecord | None
    drivers: list[RunRecord]


def select_runs(
    store: BaseRunStore, *, run: str | None = None, study: str | None = None
) -> Selection:
    """The runs of one run (with its nested runs), one study, or the whole project.

    Args:
        store: The ledger.
        run: A run id or unique prefix; a study driver run selects its study.
        study: A study driver run id or prefix.

    Returns:
        The selection.

    Raises:
        RunNotFoundError: No such run, or the ledger is empty.
        InvalidParameterError: Both ``run`` and ``study`` were given.
    """
    scope, runs, subject, drivers = _select(store, run, study)
    if not runs:
        msg = (
            f"The ledger at {store.path} has no runs yet. Track one with "
            "'wattwise run -- python train.py', then try again."
        )
        raise RunNotFoundError(msg)
    roots = _roots(runs)
    return Selection(
        scope=scope, runs=runs, counted=[r for r in runs if r.id in roots], subject=subject,
        drivers=drivers,
    )  # fmt: skip


def build_report(
    store: BaseRunStore,
    *,
    run: str | None = None,
    study: str | None = None,
    metric: str | None = None,
    functional_unit: str | None = None,
    count: float | None = None,
    te_kgco2e: float | None = None,
    lifetime_years: float | None = None,
    share: float | None = None,
    instance_type: str | None = None,
    title: str | None = None,
) -> Report:
    """Read the ledger and compute a report for one run, one study or the whole project.

    Args:
        store: The ledger (read only).
        run: A run id or prefix; a study driver run gives a study report.
        study: A study driver run id or prefix.
        metric: The objective to plot against energy for studies (default: the study's
            own, else the metric most trials logged).
        functional_unit: SCI functional unit name (default ``"training run"``).
        count: SCI R, number of functional units delivered (default: with no
            ``functional_unit`` either, the selection's final runs, see
            ``default_count`` in ``report/_sci.py``; else 1).
        te_kgco2e: SCI TE override, kgCO2e.
        lifetime_years: SCI EL override, years.
        share: SCI RR/ToR override.
        instance_type: Cloud instance type for the CCF embodied table.
        title: Heading (default from the scope).

    Returns:
        The report.

    Raises:
        RunNotFoundError: The run or study is not in the ledger, or the ledger is empty.
        InvalidParameterError: Both ``run`` and ``study`` were given, or an SCI parameter
            is out of range.
    """
    sel = select_runs(store, run=run, study=study)
    scope, runs, subject, drivers = sel.scope, sel.runs, sel.subject, sel.drivers
    counted_ids = {r.id for r in sel.counted}
    shown_drivers, wanted = _shown(scope, runs, counted_ids, drivers)
    last = _metrics_of(store, [r.id for r in runs] if wanted is None else wanted)
    summaries = [_summary(r, r.id in counted_ids, last.get(r.id, {})) for r in runs]
    counted_runs = sel.counted
    headline = _headline(runs, summaries)
    includes, excludes = _includes(headline, summaries, runs)
    by_id = {s.id: s for s in summaries}
    records = {r.id: r for r in runs}
    members: dict[str, list[RunSummary]] = {d.id: [] for d in shown_drivers}
    for r in runs:
        if r.study_id in members and r.id != r.study_id:
            members[r.study_id].append(by_id[r.id])
    studies = [_study_view(d, members[d.id], records, metric) for d in shown_drivers]
    setup = _project_setup(store) if scope == "project" else _setup(runs)
    if count is not None:
        r_count, r_source = count, USER_COUNT
    elif functional_unit is None:
        finals = sum(1 for s in summaries if s.counted and s.role == "final")
        r_count, r_source = default_count(scope, len(counted_runs), finals)
    else:
        r_count, r_source = 1.0, f"default: 1, no --count given; {SET_COUNT}"
    sci: SciResult | None = compute_sci(
        counted_runs, functional_unit=functional_unit or "training run", count=r_count,
        count_source=r_source, te_kgco2e=te_kgco2e,
        lifetime_years=lifetime_years, share=share, instance_type=instance_type,
    )  # fmt: skip
    credits = _credits(store, scope, runs, sci)
    if title is None:
        if scope == "project":
            title = "Project footprint"
        elif scope == "study":
            assert subject is not None
            title = f"Tuning study {subject.name}"
        else:
            assert subject is not None
            title = f"Run {subject.name}"
    return Report(
        scope=scope, title=title, subject_id=subject.id if subject else None,
        generated_at=time.time(), tool_version=__version__, store_path=str(store.path),
        headline=headline, includes=includes, excludes=excludes,
        timeline=_timeline(store, counted_runs, subject),
        project=_project(store, scope, runs, summaries, drivers,
                         {d.id for d in shown_drivers}),
        studies=studies, runs=summaries, setup=setup, sci=sci, credits=credits,
        notes=_notes(runs, setup),
        curves=_curves(store, scope, runs, summaries, subject, studies),
    )  # fmt: skip

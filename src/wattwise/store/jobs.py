"""Jobs in the ledger: the runs of one torchrun, SLURM or Ray job read as one record.

A *job* is the group of runs whose records carry the same ``record["job"]["id"]`` (the
ranks of a torchrun/DDP job, the tasks of a SLURM step, the node wrappers around them).
Each device of a job is metered by one of its runs only (the election, see
``docs/explanation/jobs.md``), so the job's energy is the plain sum of its *counted* runs:
its runs that are not nested inside another run of the job (a nested run's energy is
already inside its parent's). :func:`job_summary` reads one job; :func:`runs_page` is the
ledger listing with each job folded into one entry (``wattwise runs``), and each tuning
study's trials folded into its study run's entry (:class:`StudyLine`).

Nothing here writes: every function is a read of the ledger.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from wattwise.exceptions import RunNotFoundError
from wattwise.store._model import RunRecord, RunStatus, iso_utc

if TYPE_CHECKING:
    from wattwise.store._base import BaseRunStore

#: Shortest job id prefix :func:`job_summary` accepts (the ledger's rule for run ids).
MIN_PREFIX = 4

#: Job status from its runs' statuses, first match wins: a job with a run still running is
#: running (it is not over), else failed if any run failed, else crashed if any crashed,
#: else finished (every run finished).
STATUS_ORDER = ("running", "failed", "crashed", "finished")

#: Seconds two measurers of one device may overlap before the summary warns: a takeover
#: starts at most one sampling interval after the old measurer's last heartbeat, and
#: clocks of two hosts differ a little.
OVERLAP_TOLERANCE_S = 1.0


def job_status(statuses: Iterable[str]) -> str:
    """The status of a job from its runs' (effective) statuses (:data:`STATUS_ORDER`)."""
    present = set(statuses)
    for status in STATUS_ORDER:
        if status in present:
            return status
    return "finished"


def job_of(run: RunRecord) -> dict[str, Any] | None:
    """The run's ``record["job"]`` when it names a job (:attr:`RunRecord.job_id`)."""
    job = run.record.get("job")
    return job if run.job_id is not None and isinstance(job, dict) else None


def _int_or_none(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    return None


def _str_list(value: Any) -> tuple[str, ...]:
    if isinstance(value, (list, tuple)):
        return tuple(str(v) for v in value if isinstance(v, str))
    return ()


@dataclasses.dataclass(frozen=True)
class JobHost:
    """One host of a job. Energy is that of the job's counted runs on the host.

    Attributes:
        host: The host id the runs recorded (``WATTWISE_HOST_ID`` or the hostname).
        runs: Runs of the job on this host (nested ones included).
        ranks: Global ranks seen on this host, sorted.
    """

    host: str
    runs: int
    ranks: tuple[int, ...]
    energy_j: float
    energy_band_j: float
    co2e_g: float

    def to_dict(self) -> dict[str, Any]:
        """JSON shape."""
        data = dataclasses.asdict(self)
        data["ranks"] = list(self.ranks)
        return data


#: What a :class:`JobRank` entry is (its ``role``).
RANK_ROLES = {
    "rank": "a rank's own run (it called track(), or ran under wattwise run)",
    "node": "a node's run (wattwise run -- torchrun ...): it measures the node for its ranks",
    "process": "a run of the job without a rank (WATTWISE_JOB_ID)",
    "share": "a rank without a run of its own, seen by its node's run: its share of that "
             "run's energy by CPU time (inside the node's figure, not added to it)",
}  # fmt: skip


@dataclasses.dataclass(frozen=True)
class JobRank:
    """One rank or run of a job (``role``: :data:`RANK_ROLES`).

    Attributes:
        run_id: The run (for a ``share`` entry: the node's run whose energy holds it).
        rank: Global rank (``RANK``, ``SLURM_PROCID``), None for a node's run.
        local_rank: Rank on its host (``LOCAL_RANK``, ``SLURM_LOCALID``).
        node_rank: Index of its node in the job (``GROUP_RANK``), where recorded.
        energy_j: The run's own attributed energy (for a nested run or a ``share``: a part
            of another run's).
        measures: Device keys this run metered for the job (``cpu:HOST``, ``gpu:UUID``).
        counted: True when its energy is a term of the job's total (a run not nested in a
            run of the job).
        parent_id: The run it is nested in, if any.
        role: What the entry is: ``rank``, ``node``, ``process`` or ``share``.
    """

    run_id: str
    rank: int | None
    local_rank: int | None
    node_rank: int | None
    host: str
    status: str
    started_at: float
    ended_at: float | None
    energy_j: float
    energy_band_j: float
    co2e_g: float
    measures: tuple[str, ...]
    counted: bool
    parent_id: str | None
    role: str = "rank"

    def to_dict(self) -> dict[str, Any]:
        """JSON shape (times as ISO-8601 UTC)."""
        data = dataclasses.asdict(self)
        data["measures"] = list(self.measures)
        data["started_at"] = iso_utc(self.started_at)
        data["ended_at"] = iso_utc(self.ended_at)
        return data


@dataclasses.dataclass(frozen=True)
class JobDevice:
    """One device of a job and who metered it.

    Attributes:
        key: ``cpu:HOST`` (a host's CPU packages), ``dram:HOST`` or ``gpu:UUID``.
        component: ``cpu``, ``dram`` or ``gpu``.
        host: The host it is on (from the key, else the measuring run's host).
        measured_by: Runs that metered it, in time order (more than one after a takeover).
        energy_j: Its energy over the job, None where a measurer's figure covers several
            devices of the component together (then ``note`` says which run holds it).
        energy_band_j: Half-width of its band, None when unknown (counters).
        note: How the figure was found.
    """

    key: str
    component: str
    host: str | None
    measured_by: tuple[str, ...]
    energy_j: float | None
    energy_band_j: float | None
    note: str

    def to_dict(self) -> dict[str, Any]:
        """JSON shape."""
        data = dataclasses.asdict(self)
        data["measured_by"] = list(self.measured_by)
        return data


@dataclasses.dataclass(frozen=True)
class JobSummary:
    """A job read from the ledger: totals with bands, per host, per rank, per device.

    Energy, band and carbon are sums over the job's counted runs (not nested in another
    run of the job); the election made each device counted by one run, so nothing is
    counted twice unless ``warnings`` says the records disagree.

    Attributes:
        job_id: The job's id (``torchrun:…``, ``slurm:1234.0``, ``WATTWISE_JOB_ID``…).
        source: What identified it (``torchrun``, ``slurm``, ``ray``, ``user``…).
        status: :func:`job_status` of its runs.
        started_at: Earliest start of its runs (Unix seconds).
        ended_at: Latest end, None while a run has not ended.
        duration_s: Wall time from the first start to the last end (or last heartbeat).
        runs: How many runs it has (nested ones included).
        run_ids: Those runs, oldest first.
        world_size: The world size its ranks recorded (largest), None if none did.
        slurm: SLURM facts of the job (id, step, nodes, allocation), if recorded.
        sacct: The reconciliation with SLURM's accounting (``sacct`` annotation), if any.
        warnings: What the records disagree on (one sentence each).
    """

    job_id: str
    source: str | None
    status: str
    started_at: float
    ended_at: float | None
    duration_s: float
    runs: int
    run_ids: tuple[str, ...]
    world_size: int | None
    hosts: tuple[JobHost, ...]
    ranks: tuple[JobRank, ...]
    devices: tuple[JobDevice, ...]
    energy_j: float
    energy_band_j: float
    co2e_g: float
    co2e_band_g: float
    regions: tuple[str, ...]
    users: tuple[str, ...]
    slurm: dict[str, Any] | None
    sacct: dict[str, Any] | None
    warnings: tuple[str, ...]

    @property
    def rank_count(self) -> int:
        """Distinct ranks among its runs; where none recorded a rank, its counted runs."""
        ranks = {r.rank for r in self.ranks if r.rank is not None}
        return len(ranks) if ranks else sum(1 for r in self.ranks if r.counted)

    def to_dict(self) -> dict[str, Any]:
        """JSON shape (``wattwise show JOB --json``): times as ISO-8601 UTC."""
        return {
            "job_id": self.job_id,
            "source": self.source,
            "status": self.status,
            "started_at": iso_utc(self.started_at),
            "ended_at": iso_utc(self.ended_at),
            "duration_s": self.duration_s,
            "runs": self.runs,
            "run_ids": list(self.run_ids),
            "rank_count": self.rank_count,
            "world_size": self.world_size,
            "energy_j": self.energy_j,
            "energy_band_j": self.energy_band_j,
            "co2e_g": self.co2e_g,
            "co2e_band_g": self.co2e_band_g,
            "regions": list(self.regions),
            "users": list(self.users),
            "hosts": [h.to_dict() for h in self.hosts],
            "ranks": [r.to_dict() for r in self.ranks],
            "devices": [d.to_dict() for d in self.devices],
            "slurm": self.slurm,
            "sacct": self.sacct,
            "warnings": list(self.warnings),
        }


# -- reading a job ---------------------------------------------------------------------


def job_runs(store: BaseRunStore, job_id: str) -> list[RunRecord]:
    """Every run of the job ``job_id`` (exact id), oldest first, as readers see them."""
    return store.list_runs(job_id=job_id)


def job_ids(store: BaseRunStore) -> dict[str, int]:
    """Every job id in the ledger with its number of runs (one grouped query)."""
    counts: dict[str, int] = {}
    for row in store.aggregate("job", top_level=False):
        if row.group is not None:
            counts[row.group] = counts.get(row.group, 0) + row.runs
    return counts


def resolve_job(store: BaseRunStore, ref: str) -> str | None:
    """The job id ``ref`` names (the whole id, or a prefix of at least :data:`MIN_PREFIX`
    characters of one job id only), None when no job matches.

    Raises:
        RunNotFoundError: The prefix matches several jobs.
    """
    if store.count_runs(job_id=ref):
        return ref
    if len(ref) < MIN_PREFIX:
        return None
    matches = sorted(j for j in job_ids(store) if j.startswith(ref))
    if len(matches) > 1:
        shown = ", ".join(matches[:5]) + (", ..." if len(matches) > 5 else "")
        msg = f"Job prefix {ref!r} is ambiguous ({shown}); give more characters."
        raise RunNotFoundError(msg)
    return matches[0] if matches else None


def job_summary(store: BaseRunStore, ref: str) -> JobSummary:
    """The job whose id is ``ref`` or starts with it (at least 4 characters).

    Raises:
        RunNotFoundError: No run of the ledger belongs to such a job, or the prefix
            matches several jobs.
    """
    job_id = resolve_job(store, ref)
    if job_id is None:
        msg = (
            f"No job {ref!r} in the ledger {store.url}. List jobs with 'wattwise runs' "
            "(a job is one line there)."
        )
        raise RunNotFoundError(msg)
    return summarize_job(job_id, job_runs(store, job_id))


def summarize_job(job_id: str, runs: Sequence[RunRecord], *,
                  now: float | None = None) -> JobSummary:  # fmt: skip
    """A :class:`JobSummary` from the job's runs (as :func:`job_runs` returns them).

    Raises:
        RunNotFoundError: ``runs`` is empty.
    """
    if not runs:
        msg = f"Job {job_id!r} has no runs in the ledger. List jobs with 'wattwise runs'."
        raise RunNotFoundError(msg)
    runs = sorted(runs, key=lambda r: (r.started_at, r.id))
    members = {r.id for r in runs}
    counted = [r for r in runs if r.parent_id is None or r.parent_id not in members]
    warnings: list[str] = []
    outside = [r for r in counted if r.parent_id is not None]
    if outside:
        warnings.append(
            f"{len(outside)} run(s) of the job are nested in runs outside it (e.g. "
            f"{outside[0].id[:8]} in {str(outside[0].parent_id)[:8]}); their energy is counted "
            "here and inside those runs too."
        )
    jobs = {r.id: job_of(r) or {} for r in runs}
    counted_ids = {r.id for r in counted}

    def host_of(run: RunRecord) -> str:
        host = jobs[run.id].get("host")
        return host if isinstance(host, str) and host else run.host

    entries = [
        JobRank(
            run_id=r.id,
            rank=_int_or_none(jobs[r.id].get("rank")),
            local_rank=_int_or_none(jobs[r.id].get("local_rank")),
            node_rank=_int_or_none(jobs[r.id].get("node_rank")),
            host=host_of(r),
            status=str(r.status),
            started_at=r.started_at,
            ended_at=r.ended_at,
            energy_j=r.energy_j,
            energy_band_j=r.energy_band_j,
            co2e_g=r.co2e_g,
            measures=_str_list(jobs[r.id].get("measures")),
            counted=r.id in counted_ids,
            parent_id=r.parent_id,
            role=_role(jobs[r.id]),
        )
        for r in runs
    ]
    entries += _shares(runs, jobs, host_of, {e.rank for e in entries if e.rank is not None})
    ranks = tuple(sorted(entries, key=lambda k: (k.rank is None, k.rank or 0, k.started_at)))
    hosts: dict[str, dict[str, Any]] = {}
    for entry in ranks:
        h = hosts.setdefault(entry.host, {"runs": 0, "ranks": set(), "energy_j": 0.0,
                                          "energy_band_j": 0.0, "co2e_g": 0.0})  # fmt: skip
        if entry.rank is not None:
            h["ranks"].add(entry.rank)
        if entry.role == "share":
            continue
        h["runs"] += 1
        if entry.counted:
            h["energy_j"] += entry.energy_j
            h["energy_band_j"] += entry.energy_band_j
            h["co2e_g"] += entry.co2e_g
    alone = [r.id[:8] for r in runs if jobs[r.id].get("standalone")]
    if alone:
        warnings.append(
            f"Run(s) {', '.join(alone)} could not hold the job's election and measured as "
            "standalone runs: the job may count a device more than once (see each run's "
            "record)."
        )
    sources = [str(jobs[r.id]["source"]) for r in runs
               if isinstance(jobs[r.id].get("source"), str)]  # fmt: skip
    world = [w for r in runs if (w := _int_or_none(jobs[r.id].get("world_size"))) is not None]
    devices, device_warnings = _devices(runs, jobs, host_of)
    warnings.extend(device_warnings)
    if len(set(sources)) > 1:
        warnings.append(f"Its runs name different sources ({', '.join(sorted(set(sources)))}).")
    ended = [r.ended_at for r in runs]
    ended_at = None if None in ended else max(e for e in ended if e is not None)
    started_at = runs[0].started_at
    if any(r.status is RunStatus.RUNNING for r in runs):
        last = now if now is not None else time.time()
    else:
        last = max(r.ended_at if r.ended_at is not None else r.heartbeat_at for r in runs)
    return JobSummary(
        job_id=job_id,
        source=sources[0] if sources else None,
        status=job_status(str(r.status) for r in runs),
        started_at=started_at,
        ended_at=ended_at,
        duration_s=max(0.0, last - started_at),
        runs=len(runs),
        run_ids=tuple(r.id for r in runs),
        world_size=max(world) if world else None,
        hosts=tuple(
            JobHost(
                host=name, runs=h["runs"], ranks=tuple(sorted(h["ranks"])),
                energy_j=h["energy_j"], energy_band_j=h["energy_band_j"], co2e_g=h["co2e_g"],
            )
            for name, h in sorted(hosts.items())
        ),
        ranks=ranks,
        devices=devices,
        energy_j=sum(r.energy_j for r in counted),
        energy_band_j=sum(r.energy_band_j for r in counted),
        co2e_g=sum(r.co2e_g for r in counted),
        co2e_band_g=sum(r.co2e_band_g for r in counted),
        regions=tuple(sorted({r.region for r in runs if r.region})),
        users=tuple(sorted({r.user for r in runs if r.user})),
        slurm=_first_dict(runs, jobs, "slurm"),
        sacct=_sacct(runs),
        warnings=tuple(warnings),
    )


def _role(job: dict[str, Any]) -> str:
    """``record["job"]["role"]`` when it is one of :data:`RANK_ROLES`, else from the rank."""
    role = job.get("role")
    if isinstance(role, str) and role in RANK_ROLES and role != "share":
        return role
    return "rank" if _int_or_none(job.get("rank")) is not None else "process"


def _shares(runs: Sequence[RunRecord], jobs: dict[str, dict[str, Any]], host_of: Any,
            have: set[int]) -> list[JobRank]:  # fmt: skip
    """Ranks that a node's run saw below it (``record["job"]["ranks"]``) and that have no
    run of their own in the job: each as its share of the node's energy."""
    found: list[JobRank] = []
    for run in runs:
        listed = jobs[run.id].get("ranks")
        for item in listed if isinstance(listed, list) else []:
            rank = _int_or_none(item.get("rank")) if isinstance(item, dict) else None
            if rank is None or rank in have:
                continue
            have.add(rank)
            share = item.get("share")
            share = float(share) if isinstance(share, (int, float)) and 0 <= share <= 1 else None
            energy = item.get("energy_j")
            energy = float(energy) if isinstance(energy, (int, float)) else (
                share * run.energy_j if share is not None else 0.0)  # fmt: skip
            fraction = energy / run.energy_j if run.energy_j > 0 else 0.0
            found.append(JobRank(
                run_id=run.id, rank=rank, local_rank=_int_or_none(item.get("local_rank")),
                node_rank=_int_or_none(item.get("node_rank", jobs[run.id].get("node_rank"))),
                host=host_of(run), status=str(run.status), started_at=run.started_at,
                ended_at=run.ended_at, energy_j=energy,
                energy_band_j=run.energy_band_j * fraction, co2e_g=run.co2e_g * fraction,
                measures=(), counted=False, parent_id=run.id, role="share",
            ))  # fmt: skip
    return found


def _first_dict(runs: Sequence[RunRecord], jobs: dict[str, dict[str, Any]],
                key: str) -> dict[str, Any] | None:  # fmt: skip
    """``record["job"][key]`` (or ``record[key]``) of the first run that has it."""
    for run in runs:
        for holder in (jobs[run.id], run.record):
            value = holder.get(key)
            if isinstance(value, dict) and value:
                return dict(value)
    return None


def _sacct(runs: Sequence[RunRecord]) -> dict[str, Any] | None:
    """The ``sacct`` reconciliation annotated on the job's runs (``wattwise job reconcile``
    stores it on each run): the latest by its ``checked_at``."""
    found = [dict(v) for r in runs if isinstance(v := r.record.get("sacct"), dict) and v]
    if not found:
        return None
    return max(found, key=lambda v: str(v.get("checked_at") or ""))


def _component_of(key: str) -> str:
    return key.split(":", 1)[0]


def _interval(run: RunRecord) -> tuple[float, float]:
    end = run.ended_at if run.ended_at is not None else run.heartbeat_at
    return run.started_at, max(run.started_at, end)


def _devices(
    runs: Sequence[RunRecord], jobs: dict[str, dict[str, Any]], host_of: Any
) -> tuple[tuple[JobDevice, ...], list[str]]:
    """Per device: its measurers, its energy where the records allow, and disagreements."""
    by_id = {r.id: r for r in runs}
    measurers: dict[str, list[RunRecord]] = {}
    pointers: dict[str, dict[str, str]] = {}
    for run in runs:
        for key in _str_list(jobs[run.id].get("measures")):
            measurers.setdefault(key, []).append(run)
        pointed = jobs[run.id].get("measured_by")
        if isinstance(pointed, dict):
            for key, target in pointed.items():
                if isinstance(key, str) and isinstance(target, str) and target != run.id:
                    pointers.setdefault(key, {})[run.id] = target
    warnings: list[str] = []
    devices: list[JobDevice] = []
    for key in sorted(set(measurers) | set(pointers)):
        comp = _component_of(key)
        who = sorted(measurers.get(key, []), key=lambda r: r.started_at)
        # A run that took the device over (``takeovers``: when; or a record still naming
        # the old measurer) measured it from then on only.
        spans = []
        for run in who:
            start, end = _interval(run)
            took = jobs[run.id].get("takeovers")
            for item in took if isinstance(took, list) else []:
                at = item.get("at") if isinstance(item, dict) else None
                if item.get("device") == key and isinstance(at, (int, float)):
                    start = max(start, float(at))
            before = pointers.get(key, {}).get(run.id)
            if before is not None and before in by_id:
                start = max(start, _interval(by_id[before])[1])
            spans.append((start, end, run))
        for i, (s1, e1, r1) in enumerate(spans):
            for s2, e2, r2 in spans[i + 1 :]:
                if min(e1, e2) - max(s1, s2) > OVERLAP_TOLERANCE_S:
                    warnings.append(
                        f"Device {key} was measured by runs {r1.id[:8]} and {r2.id[:8]} at "
                        f"the same time ({min(e1, e2) - max(s1, s2):.0f} s): its energy may "
                        "be counted twice; check the election in each run's record."
                    )
        for source_id, target in sorted(pointers.get(key, {}).items()):
            if target not in by_id:
                warnings.append(
                    f"Run {source_id[:8]} says device {key} was measured by run {target[:8]}, "
                    "which is not in this job's records: that device's energy may be missing."
                )
            elif by_id[target] not in who:
                warnings.append(
                    f"Run {source_id[:8]} says device {key} was measured by run {target[:8]}, "
                    "whose record does not list it: that device's energy may be missing."
                )
        host: str | None = key.split(":", 1)[1] if comp in ("cpu", "dram") and ":" in key else None
        if host is None and who:
            host = host_of(who[0])
        energy: float | None = 0.0 if who else None
        band: float | None = 0.0 if who else None
        notes = []
        for run in who:
            same = [k for k in _str_list(jobs[run.id].get("measures")) if _component_of(k) == comp]
            part = next((c for c in run.components if c.component == comp), None)
            if len(same) > 1:
                energy = band = None
                notes.append(
                    f"inside run {run.id[:8]}'s {comp} figure, with {len(same) - 1} other "
                    f"{comp} device(s)"
                )
                continue
            if part is None:
                notes.append(f"run {run.id[:8]} recorded no {comp} energy")
                continue
            if energy is not None:
                energy += part.energy_j
            if band is not None:
                band = None if part.band_j is None else band + part.band_j
            notes.append(f"{part.method} by {part.meter} in run {run.id[:8]}")
        if not who:
            notes.append("no run of the job says it measured this device")
        devices.append(
            JobDevice(key=key, component=comp, host=host,
                      measured_by=tuple(r.id for r in who), energy_j=energy,
                      energy_band_j=band, note="; ".join(notes))
        )  # fmt: skip
    return tuple(devices), warnings


# -- the ledger listing with jobs folded ----------------------------------------------


@dataclasses.dataclass(frozen=True)
class StudyLine:
    """A tuning study as one entry of the listing: its study run, its trials summed by the
    ledger (one grouped query, no trial read). Units in the names.

    Attributes:
        run: The study run (the driver; ``kind == "study"``).
        trials: Its trial runs in the ledger.
        running: Those still running.
        energy_j: The study run's energy plus its trials', in joules.
        energy_band_j: The same for the uncertainty bands, in joules.
        co2e_g: The study run's emissions plus its trials', in gCO2e.
        trial_runs: Its trial runs, newest first, when unfolded (``runs_page(trials=True)``),
            else None.
    """

    run: RunRecord
    trials: int
    running: int
    energy_j: float
    energy_band_j: float
    co2e_g: float
    trial_runs: list[RunRecord] | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON shape: the study run's, with the study's figures."""
        data = {
            **self.run.to_dict(), "trials": self.trials, "running_trials": self.running,
            "run_energy_j": self.run.energy_j, "run_co2e_g": self.run.co2e_g,
            "energy_j": self.energy_j, "energy_band_j": self.energy_band_j,
            "co2e_g": self.co2e_g,
        }  # fmt: skip
        if self.trial_runs is not None:
            data["trial_runs"] = [r.to_dict() for r in self.trial_runs]
        return data


def _study_lines(
    store: BaseRunStore, entries: Sequence[RunRecord | JobSummary], *, trials: bool
) -> list[RunRecord | JobSummary | StudyLine]:
    """The study runs among ``entries`` as :class:`StudyLine`: one grouped query over the
    trials of every study (``aggregate("study")``), and each listed study's trials when
    unfolded."""
    if not any(isinstance(e, RunRecord) and e.kind == "study" for e in entries):
        return list(entries)
    sums: dict[str, list[float]] = {}
    for row in store.aggregate("study", top_level=False):
        if row.group is None:
            continue
        s = sums.setdefault(row.group, [0, 0, 0.0, 0.0, 0.0])
        s[0] += row.runs
        s[1] += row.runs if row.status == RunStatus.RUNNING.value else 0
        s[2] += row.energy_j
        s[3] += row.energy_band_j
        s[4] += row.co2e_g
    out: list[RunRecord | JobSummary | StudyLine] = []
    for entry in entries:
        if not (isinstance(entry, RunRecord) and entry.kind == "study"):
            out.append(entry)
            continue
        n, running, energy, band, co2e = sums.get(entry.id, [0, 0, 0.0, 0.0, 0.0])
        out.append(StudyLine(
            run=entry, trials=int(n), running=int(running), energy_j=entry.energy_j + energy,
            energy_band_j=entry.energy_band_j + band, co2e_g=entry.co2e_g + co2e,
            trial_runs=store.list_runs(study_id=entry.id, newest_first=True) if trials
            else None,
        ))  # fmt: skip
    return out


@dataclasses.dataclass(frozen=True)
class RunsPage:
    """A page of the ledger listing, newest first, each job folded into one entry.

    Attributes:
        entries: Runs outside any job (:class:`RunRecord`), jobs (:class:`JobSummary`) and
            studies (:class:`StudyLine`, unless ``studies=False``), newest first; a job
            stands where its newest (listed) run would, a study where its study run does.
        total: Entries in the whole listing (for "N more"); None when the page was not full
            and nothing was skipped (then the page is the whole listing).
        has_jobs: True when the ledger has at least one job (the listing is folded).
    """

    entries: list[RunRecord | JobSummary | StudyLine]
    total: int | None
    has_jobs: bool
    #: True when the page folds studies (the ledger has trials left out of the listing).
    has_studies: bool = False


def _job_statuses(
    store: BaseRunStore, study_id: str | None = None
) -> dict[str | None, dict[str, int]]:
    """Runs per (effective) status for each job id, None for runs outside any job, in one
    grouped query (``study_id``: the store's filter; ``NO_STUDY`` leaves trials out)."""
    statuses: dict[str | None, dict[str, int]] = {}
    for row in store.aggregate("job", top_level=False, study_id=study_id):
        counts = statuses.setdefault(row.group, {})
        counts[row.status] = counts.get(row.status, 0) + row.runs
    return statuses


def runs_page(
    store: BaseRunStore,
    *,
    status: str | None = None,
    limit: int | None = None,
    offset: int = 0,
    chunk: int | None = None,
    studies: bool = True,
    trials: bool = False,
) -> RunsPage:
    """The ledger listing newest first, a page at a time, each job folded into one entry.

    With ``studies`` (the default), a tuning study's trials are left out of the listing in
    the ledger's query (``study_id=NO_STUDY``) and its study run's entry is a
    :class:`StudyLine`, at the study run's place (its start), with its trials counted and
    summed by one grouped query (their runs listed with ``trials``). ``studies=False``
    lists trials as runs.

    ``limit`` and ``offset`` count entries (a job is one, a study is one). With ``status``,
    runs outside jobs are kept by their own status and jobs by :func:`job_status` of all their runs
    (a job of that status has at least one run of it, so the listing reads only runs of
    that status). A job stands where its newest listed run would; jobs on the page are
    read whole (:func:`summarize_job`).

    Cost: the runs are read ``chunk`` at a time (default: the page's size with the entries
    skipped, 20 to 2,000), newest first, until the page is full; entries skipped by
    ``offset`` are read too when the ledger has jobs (folding needs them; without jobs the
    ledger skips them). One grouped query over the ledger (``aggregate("job")``) counts
    the entries when the page is full or ``offset`` is given, as "N more" needs.
    """
    from wattwise.store._base import NO_STUDY

    scope = NO_STUDY if studies else None
    statuses: dict[str | None, dict[str, int]] | None = None
    if offset:
        statuses = _job_statuses(store, scope)
        if not any(key is not None for key in statuses):  # no jobs: the ledger pages
            runs = store.list_runs(status=status, limit=limit, offset=offset, newest_first=True,
                                   study_id=scope)  # fmt: skip
            lines = _study_lines(store, list(runs), trials=trials)
            return RunsPage(entries=lines, total=_total(statuses, status), has_jobs=False,
                            has_studies=_folded(lines))  # fmt: skip
    entries: list[RunRecord | JobSummary] = []
    seen: set[str] = set()
    rows = cursor = 0
    wanted = None if limit is None else offset + limit
    if chunk is None:
        chunk = 2000 if wanted is None else min(max(wanted, 20), 2000)
    while wanted is None or rows < wanted:
        batch = store.list_runs(status=status, limit=chunk, offset=cursor, newest_first=True,
                                study_id=scope)  # fmt: skip
        cursor += len(batch)
        for run in batch:
            jid = run.job_id
            if jid is not None:
                if jid in seen:
                    continue
                seen.add(jid)
                if status is not None and rows < offset:  # skipped: its status suffices
                    statuses = statuses if statuses is not None else _job_statuses(store, scope)
                    if job_status(statuses.get(jid, {})) != status:
                        continue
            rows += 1
            if rows <= offset:
                continue
            if jid is None:
                entries.append(run)
            else:
                job = summarize_job(jid, job_runs(store, jid))
                if status is not None and job.status != status:
                    rows -= 1
                    continue
                entries.append(job)
            if wanted is not None and rows >= wanted:
                break
        if len(batch) < chunk:
            break
    total = None
    if limit is not None and (len(entries) == limit or offset):
        statuses = statuses if statuses is not None else _job_statuses(store, scope)
        total = _total(statuses, status)
    has_jobs = bool(seen) or (statuses is not None and any(k is not None for k in statuses))
    lines = _study_lines(store, entries, trials=trials)
    return RunsPage(entries=lines, total=total, has_jobs=has_jobs,
                    has_studies=_folded(lines))  # fmt: skip


def _folded(entries: Iterable[RunRecord | JobSummary | StudyLine]) -> bool:
    return any(isinstance(e, StudyLine) for e in entries)


def _total(statuses: dict[str | None, dict[str, int]], status: str | None) -> int:
    """Entries in the whole listing: runs outside jobs, plus jobs (of ``status``)."""
    loose = statuses.get(None, {})
    outside = sum(loose.values()) if status is None else loose.get(status, 0)
    return outside + sum(
        1 for jid, counts in statuses.items()
        if jid is not None and (status is None or job_status(counts) == status)
    )  # fmt: skip

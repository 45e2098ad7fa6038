"""``wattwise show REF``: everything the ledger knows about one run, or one job.

REF names a run (its id or a unique prefix) or a job (its id, ``slurm:812.0``,
``torchrun:…``, or a unique prefix). Which one wins when REF could be both is stated in
:data:`REF_HELP` (and ``wattwise show --help``).
"""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING, Any

from wattwise.cli import _args
from wattwise.cli import _format as fmt

if TYPE_CHECKING:
    from wattwise.store.jobs import JobRank, JobSummary

HELP = "show one run (energy per component, carbon, environment, metrics) or one job"

#: How REF is read; the order is the rule when REF could name a run and a job.
REF_HELP = (
    "run id or job id, or a unique prefix of one (4+ characters). Order when REF could be "
    "both: a whole run id, then a whole job id, then a run id prefix, then a job id prefix "
    "(a run keeps precedence over a job prefix; a note on stderr names the other match, "
    "--job shows the job)"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``wattwise show``."""
    parser.add_argument("run", type=_args.run_ref, metavar="REF", help=REF_HELP)
    parser.add_argument(
        "--job", action="store_true",
        help="read REF as a job id or prefix only (a job's ranks, hosts, devices, totals)",
    )  # fmt: skip
    parser.add_argument("--json", action="store_true", help="machine-readable output")


def run_details(store: Any, ref: str) -> dict[str, Any]:
    """The run's API fields plus its record, final metrics and series."""
    run = store.get_run(ref)
    data: dict[str, Any] = run.to_dict()
    data["record"] = run.record
    series: dict[str, list[dict[str, Any]]] = {}
    for step, key, value, logged_at in store.metrics(run.id):
        series.setdefault(key, []).append({"step": step, "value": value, "at": logged_at})
    data["metrics"] = series
    return data


def resolve(store: Any, ref: str, *, job_only: bool = False) -> tuple[str, str, str | None]:
    """What REF names: ``("run", run_id, note)`` or ``("job", job_id, note)``, by the order
    in :data:`REF_HELP`; ``note`` names the other thing REF matched, if any.

    Raises:
        RunNotFoundError: REF names neither (the run lookup's message, or the job's with
            ``job_only``), or a prefix is ambiguous.
    """
    from wattwise.exceptions import RunNotFoundError
    from wattwise.store.jobs import job_summary, resolve_job

    if job_only:
        return "job", job_summary(store, ref).job_id, None
    run_id: str | None = None
    run_error: RunNotFoundError | None = None
    try:
        run_id = store.get_run(ref).id
    except RunNotFoundError as err:
        run_error = err
    job_id: str | None = None
    job_error: RunNotFoundError | None = None
    try:
        job_id = resolve_job(store, ref)
    except RunNotFoundError as err:  # an ambiguous job prefix: a run still wins
        job_error = err
    if run_id is not None and (run_id == ref or job_id != ref):
        note = None
        if job_id is not None:
            note = f"{ref!r} also names job {job_id}; show it with: wattwise show --job {job_id}"
        elif job_error is not None:
            note = f"{ref!r} also starts several job ids; show one with: wattwise show --job JOB"
        return "run", run_id, note
    if job_id is not None:
        note = None if run_id is None else (
            f"{ref!r} also starts run {run_id}; show it with: wattwise show {run_id}"
        )  # fmt: skip
        return "job", job_id, note
    error = job_error or run_error
    assert error is not None
    raise error


def main(args: argparse.Namespace) -> int:
    """Print the run or the job."""
    import sys

    from wattwise.store import open_store
    from wattwise.store.jobs import job_runs, summarize_job

    store = open_store(args.store, readonly=True)
    try:
        what, ident, note = resolve(store, args.run, job_only=args.job)
        if what == "job":
            job = summarize_job(ident, job_runs(store, ident))
        else:
            data = run_details(store, ident)
            # a study's trials (folded into its line by 'wattwise runs'), oldest first
            trials = store.list_runs(study_id=ident) if data.get("kind") == "study" else []
    finally:
        store.close()
    if note:
        print(fmt.safe(f"wattwise: note: {note}"), file=sys.stderr)
    if what == "job":
        if args.json:
            print(json.dumps(job.to_dict(), indent=2, default=str))
        else:
            print(fmt.lines(job_lines(job)))
        return 0
    fidelity = study_fidelity(data) if data.get("kind") == "study" else None
    if args.json:
        if fidelity is not None:
            data["fidelity"] = fidelity  # the line below; the figures: record.extra.study
        print(json.dumps(data, indent=2, default=str))
        return 0
    rec = data["record"]
    lines = [
        f"Run {data['id']}  '{data['name']}'  [{data['status']}]"
        + (f"  exit code {data['exit_code']}" if data["exit_code"] is not None else ""),
        f"  started {data['started_at']}  ended {data['ended_at']}  "
        f"({fmt.duration(data['duration_s'])})",
        f"  energy  {fmt.with_band(data['energy_j'], data['energy_band_j'])} attributed; "
        f"whole machine {fmt.energy(data['machine_energy_j'])}",
    ]
    if data.get("tags"):
        lines.append("  tags  " + ", ".join(map(str, data["tags"])))
    for comp in data["components"]:
        band = comp["energy_band_j"]
        lines.append(
            f"    {comp['component']:<5} {fmt.with_band(comp['energy_j'], band):<22} "
            f"{fmt.method_label(comp['method'])} by {comp['meter']}: {comp['source']}"
        )
    for meter, info in rec.get("meters", {}).items():
        for assumption in info.get("assumptions", []):
            lines.append(f"      [{meter}] {assumption}")
    intensity, pue = rec.get("intensity", {}), rec.get("pue", {})
    lines.append(
        f"  carbon  {fmt.with_band(data['co2e_g'], data['co2e_band_g'], fmt.carbon)} = energy "
        f"x PUE {pue.get('value')} x {intensity.get('g_per_kwh')} gCO2e/kWh"
    )
    lines.append(
        f"    intensity: {intensity.get('zone')} {intensity.get('year')} "
        f"{intensity.get('scope')} ({intensity.get('dataset')})"
    )
    lines.append(f"    PUE: {pue.get('source')}")
    loc = rec.get("location", {})
    lines.append(f"  location  {loc.get('display_name')} (determined: {loc.get('how')})")
    code = rec.get("code", {})
    if code.get("available"):
        dirty = " (dirty)" if code.get("dirty") else ""
        lines.append(f"  code  {str(code.get('commit', ''))[:12]}{dirty} on {code.get('branch')}")
    env = rec.get("environment", {})
    if env:
        lines.append(
            f"  python {env.get('python')}  {env.get('os')} {env.get('kernel')}  "
            f"{len(env.get('packages', {}))} packages"
        )
    hw = rec.get("hardware", {})
    if hw:
        cpu = hw.get("cpu", {})
        lines.append(f"  hardware  {cpu.get('model_name')} x{cpu.get('threads')}  "
                     f"RAM {hw.get('ram_gb')} GB  accelerator {hw.get('accelerator')}")
    cmd = rec.get("command", {})
    if cmd.get("argv"):
        lines.append(f"  command  {' '.join(cmd['argv'])}  (in {cmd.get('cwd')})")
    sampler = rec.get("sampler", {})
    lines.append(
        f"  sampler  every {sampler.get('interval_s')} s, {sampler.get('samples')} samples, "
        f"own CPU {sampler.get('cpu_s', 0):.3f} s"
    )
    if rec.get("seeds"):
        seeds = rec["seeds"]
        seeded = ", ".join(map(str, seeds.get("seeded", []))) if isinstance(seeds, dict) else ""
        lines.append(f"  seeds  {seeds.get('seed') if isinstance(seeds, dict) else seeds}"
                     + (f" ({seeded})" if seeded else ""))  # fmt: skip
    for item in rec.get("data", []):
        lines.append(
            f"  data  {item.get('name') or item.get('path')}: {item.get('algorithm', '')}:"
            f"{str(item.get('digest', item.get('hash', '')))[:16]} ({item.get('size_bytes')} B)"
        )
    if rec.get("reproduces"):
        lines.append(f"  reproduces  {rec['reproduces']}")
    flops = rec.get("flops")
    if flops and data["energy_j"] > 0 and flops.get("flops_total"):
        lines.append(
            f"  FLOPs  {flops['flops_total']:.3g} ({flops.get('method')}), "
            f"{flops['flops_total'] / data['energy_j']:.3g} FLOP/J"
        )
    if data["params"]:
        lines.append("  params  " + ", ".join(f"{k}={v}" for k, v in data["params"].items()))
    if data["metrics"]:
        last = ", ".join(f"{k}={v[-1]['value']:.4g}" for k, v in data["metrics"].items())
        lines.append(f"  metrics (last)  {last}")
    lines.extend(_job_line(rec.get("job")))
    for warning in rec.get("warnings", []):
        lines.append(f"  warning: {warning}")
    notes = rec.get("notes", [])
    for note in [notes] if isinstance(notes, str) else notes:
        lines.append(f"  note: {note}")
    if rec.get("error"):
        lines.append(f"  error: {rec['error']}")
    if fidelity is not None:
        lines.append(f"  fidelity  {fidelity}")
    if trials:
        lines.append(f"  trials  {len(trials)} (runs of this study):")
        lines.extend(_indent(fmt.table(
            ["TRIAL", "RUN", "STATE", "VALUE", "ENERGY", "STATUS"],
            [_trial_cells(t) for t in trials],
        )))  # fmt: skip
    print(fmt.lines(lines))
    return 0


def study_fidelity(data: dict[str, Any]) -> str | None:
    """A study driver's pruner fidelity in one line (``wattwise.tuning.fidelity_line``), or
    None for a record that does not hold it (an older wattwise's study)."""
    from wattwise.tuning import StudyRecord, fidelity_line

    record = data.get("record")
    study = StudyRecord.from_record(record) if isinstance(record, dict) else None
    return None if study is None else fidelity_line(study)


def _trial_cells(run: Any) -> list[str]:
    """A trial run's row under its study: number, run, state, value, energy, status."""
    from wattwise.tuning import TrialRecord

    trial = TrialRecord.from_record(run.record)
    value = None if trial is None else (trial.value if trial.value is not None
                                        else trial.last_value)  # fmt: skip
    return [
        f"#{trial.number}" if trial is not None and trial.number is not None else "-",
        run.id[:8],
        (trial.state or "-") if trial is not None else "-",
        f"{value:.6g}" if isinstance(value, (int, float)) else "-",
        fmt.with_band(run.energy_j, run.energy_band_j),
        str(run.status),
    ]


def _job_line(job: Any) -> list[str]:
    """The run's place in its job (``record["job"]``), if it has one."""
    if not isinstance(job, dict) or not isinstance(job.get("id"), str):
        return []
    rank = job.get("rank")
    who = f"rank {rank}" if rank is not None else (
        "node run" if job.get("role") == "node" else "process")  # fmt: skip
    if rank is not None and job.get("local_rank") is not None:
        who += f" (local {job['local_rank']})"
    if job.get("world_size") is not None:
        who += f" of {job['world_size']}"
    out = [f"  job  {job['id']} ({job.get('source')}): {who} on {job.get('host')}; "
           f"wattwise show --job {job['id']}"]  # fmt: skip
    measures = job.get("measures") or []
    if measures:
        out.append(f"    measures {', '.join(map(str, measures))}")
    pointed = job.get("measured_by") or {}
    if isinstance(pointed, dict) and pointed:
        others = ", ".join(f"{key} by run {str(run)[:8]}" for key, run in sorted(pointed.items()))
        out.append(f"    measured elsewhere (not counted here): {others}")
    return out


def job_lines(job: JobSummary) -> list[str]:
    """The job view of ``wattwise show``, line by line (user text made safe by the caller)."""
    hosts = len(job.hosts)
    world = f", world size {job.world_size}" if job.world_size is not None else ""
    out = [
        f"Job {job.job_id}  ({job.source or 'unknown source'})  [{job.status}]",
        f"  started {iso(job.started_at)}  ended {iso(job.ended_at)}  "
        f"({fmt.duration(job.duration_s)})",
        f"  {job.rank_count} rank(s) on {hosts} host(s), {job.runs} run(s){world}",
        f"  energy  {fmt.with_band(job.energy_j, job.energy_band_j)}: each device counted "
        "once, by the run that measured it (nested runs are inside their parent)",
        f"  carbon  {fmt.with_band(job.co2e_g, job.co2e_band_g, fmt.carbon)}"
        + (f"  ({', '.join(job.regions)})" if job.regions else ""),
        "",
        "Hosts:",
    ]
    host_rows = [
        [h.host, str(h.runs), _ranks_text(h.ranks),
         fmt.with_band(h.energy_j, h.energy_band_j), fmt.carbon(h.co2e_g)]
        for h in job.hosts
    ]  # fmt: skip
    out += _indent(fmt.table(["HOST", "RUNS", "RANKS", "ENERGY", "CARBON"], host_rows))
    out += ["", "Ranks:"]
    rank_rows = [
        [
            rank_label(r),
            "" if r.local_rank is None else str(r.local_rank), r.host, r.run_id[:8], r.status,
            rank_energy(r),
            ", ".join(r.measures) or "-",
        ]
        for r in job.ranks
    ]  # fmt: skip
    out += _indent(fmt.table(
        ["RANK", "LOCAL", "HOST", "RUN", "STATUS", "ENERGY", "MEASURES"], rank_rows))
    if job.devices:
        out += ["", "Devices (one measurer each):"]
        device_rows = [
            [d.key, d.host or "?", ", ".join(m[:8] for m in d.measured_by) or "-",
             "see note" if d.energy_j is None else fmt.with_band(d.energy_j, d.energy_band_j),
             d.note]
            for d in job.devices
        ]  # fmt: skip
        out += _indent(fmt.table(["DEVICE", "HOST", "MEASURED BY", "ENERGY", "HOW"],
                                 device_rows))  # fmt: skip
    if job.slurm:
        facts = ", ".join(
            f"{k} " + (" ".join(f"{a}={b}" for a, b in sorted(v.items()))
                       if isinstance(v, dict) else str(v))
            for k, v in sorted(job.slurm.items()) if v not in (None, "", {}, [])
        )  # fmt: skip
        out += ["", f"SLURM: {facts}"]
    if job.sacct:
        out += ["", *_sacct_lines(job.sacct)]
    if job.warnings:
        out.append("")
        out += [f"warning: {w}" for w in job.warnings]
    return out


def rank_label(rank: JobRank) -> str:
    """The RANK cell: the rank, else what the run is (``node``, ``process``)."""
    return str(rank.rank) if rank.rank is not None else rank.role


def rank_energy(rank: JobRank) -> str:
    """The ENERGY cell of a rank: its figure, and where it is counted when not here."""
    if rank.role == "share":
        return f"{fmt.energy(rank.energy_j)} (share of {rank.run_id[:8]})"
    return fmt.energy(rank.energy_j) + ("" if rank.counted else " (in parent)")


def _sacct_lines(sacct: dict[str, Any]) -> list[str]:
    """SLURM's accounting beside the ledger's figure (``wattwise job reconcile``)."""
    theirs, ours = sacct.get("sacct_energy_j"), sacct.get("ledger_energy_j")
    diff = sacct.get("difference_j")
    head = "Reconciliation with sacct"
    if sacct.get("checked_at"):
        head += f" ({sacct['checked_at']})"
    head += ": "
    if isinstance(theirs, (int, float)) and isinstance(ours, (int, float)):
        head += f"SLURM {fmt.energy(theirs)}, ledger {fmt.energy(ours)}"
        if isinstance(diff, (int, float)):
            head += f", difference (sacct - ledger) {'-' if diff < 0 else '+'}"
            head += fmt.energy(abs(diff))
    elif isinstance(ours, (int, float)):
        head += f"SLURM did not measure this step; ledger {fmt.energy(ours)}"
    else:
        head += "no figures"
    out = [head]
    if sacct.get("note"):
        out.append(f"  note: {sacct['note']}")
    covers = sacct.get("covers")
    if isinstance(covers, dict):
        out += [f"  {name} covers: {text}" for name, text in covers.items()]
    elif covers:
        out.append(f"  covers: {covers}")
    return out


def _ranks_text(ranks: tuple[int, ...]) -> str:
    return ",".join(map(str, ranks)) if ranks else "-"


def _indent(table: str) -> list[str]:
    return ["  " + line for line in table.splitlines()]


def iso(timestamp: float | None) -> str:
    """A time as the run view prints it (ISO-8601 UTC), ``-`` for None (not ended)."""
    from wattwise.store import iso_utc

    return iso_utc(timestamp) or "-"

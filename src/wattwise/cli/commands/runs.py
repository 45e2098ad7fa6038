"""``wattwise runs``: the ledger, one line per run, newest first, a page at a time.

The runs of a job (torchrun ranks, SLURM tasks, node runs: one ``record["job"]["id"]``)
fold into one line: the job id, its ranks and hosts, its energy and carbon counted once
(:mod:`wattwise.store.jobs`), its status. ``--ranks`` lists each job's runs under it.
A tuning study's trials fold into its study run's line, at the study's start: its trials
(pruned, failed), best value, and energy and carbon of the study run plus its trials
(summed by the ledger); ``--trials`` lists each study's trials under it. Paging counts
lines: a job is one, a study is one.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

from wattwise.cli import _args
from wattwise.cli import _format as fmt

if TYPE_CHECKING:
    from wattwise.store import RunRecord
    from wattwise.store.jobs import JobRank, JobSummary, StudyLine

HELP = ("list the runs in the ledger (newest first, 20 at a time; --all for every run); a "
        "job's runs, and a tuning study's trials, fold into one line")

#: Runs listed when neither --limit nor --all is given.
DEFAULT_LIMIT = 20


def _offset(text: str) -> int:
    """A whole number >= 0 (``--offset``)."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= _args.MAX_COUNT:
        msg = f"got {text!r}, but it must be a whole number >= 0 (at most {_args.MAX_COUNT})"
        raise argparse.ArgumentTypeError(msg)
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``wattwise runs``."""
    parser.add_argument("--status", choices=["running", "finished", "failed", "crashed"])
    page = parser.add_mutually_exclusive_group()
    page.add_argument(
        "--limit", type=_args.positive_int, metavar="N",
        help=f"newest N runs (N >= 1; default {DEFAULT_LIMIT})",
    )  # fmt: skip
    page.add_argument("--all", action="store_true", help="every run (may be long)")
    parser.add_argument(
        "--offset", type=_offset, default=0, metavar="K",
        help="skip the newest K runs first (the next page: --offset 20)",
    )  # fmt: skip
    parser.add_argument(
        "--ranks", action="store_true",
        help="unfold jobs: each job's ranks and runs (node runs too) under its line",
    )  # fmt: skip
    parser.add_argument(
        "--trials", action="store_true",
        help="unfold studies: each tuning study's trial runs under its line",
    )  # fmt: skip
    parser.add_argument(
        "--json", action="store_true",
        help="machine-readable output: a list, newest first, of runs (as 'show RUN --json' "
        "without record and metrics) and jobs ({\"kind\": \"job\", \"id\": JOB, ...} as "
        "'show --job JOB --json', ranks and devices only with --ranks) and studies (the study "
        "run, with trials, running_trials, pruned_trials, failed_trials, best_value and the "
        "energy_j/co2e_g of the study run plus its trials; trial_runs only with --trials)",
    )  # fmt: skip


def main(args: argparse.Namespace) -> int:
    """Print a page of runs and jobs, newest first, and how many more there are."""
    from wattwise.store import open_store
    from wattwise.store.jobs import JobSummary, StudyLine, runs_page

    limit = None if args.all else (args.limit or DEFAULT_LIMIT)
    store = open_store(args.store, readonly=True)
    try:
        page = runs_page(store, status=args.status, limit=limit, offset=args.offset,
                         trials=args.trials)  # fmt: skip
    finally:
        store.close()
    entries, total = page.entries, page.total
    more = max(0, total - args.offset - len(entries)) if total is not None else 0
    folded = [w for w, on in (("job", page.has_jobs), ("study", page.has_studies)) if on]
    what = f"line(s) (a {' or '.join(folded)} is one)" if folded else "run(s)"
    hint = (
        f"{more} more {what}; use --limit N, --offset {args.offset + len(entries)} or --all."
        if more else ""
    )  # fmt: skip
    if args.json:
        print(json.dumps([
            _job_json(e, ranks=args.ranks) if isinstance(e, JobSummary)
            else _study_json(e) if isinstance(e, StudyLine) else e.to_dict()
            for e in entries
        ], indent=2))  # fmt: skip
        if hint:
            print(f"wattwise: {hint}", file=sys.stderr)
        return 0
    if not entries:
        if args.offset and total:
            print(f"No runs past the newest {args.offset} ({total} in all).")
        else:
            print("No runs yet. Start one with: wattwise run -- python train.py")
        return 0
    rows: list[list[str]] = []
    for entry in entries:
        if isinstance(entry, JobSummary):
            rows.append(_job_row(entry))
            if args.ranks:
                rows.extend(_rank_row(entry, rank) for rank in entry.ranks)
        elif isinstance(entry, StudyLine):
            rows.append(_study_row(entry))
            rows.extend(_trial_row(trial) for trial in entry.trial_runs or ())
        else:
            rows.append(_run_row(entry))
    headers = ["ID", "NAME", "STATUS", "STARTED (UTC)", "TIME", "ENERGY", "CARBON", "REGION"]
    print(fmt.table(headers, rows))
    if hint:
        print(hint)
    return 0


def _started(timestamp: float | None) -> str:
    from wattwise.store import iso_utc

    return (iso_utc(timestamp) or "")[:19].replace("T", " ")


def _row(
    ident: str, name: str, status: str, started_at: float | None, duration_s: float,
    energy_j: float, band_j: float | None, co2e_g: float, region: str,
) -> list[str]:  # fmt: skip
    """A line of the table (a run's, a job's, a study's): its cells, formatted."""
    return [
        ident,
        name,
        status,
        _started(started_at),
        fmt.duration(duration_s),
        fmt.with_band(energy_j, band_j),
        fmt.carbon(co2e_g),
        region,
    ]


def _run_row(r: RunRecord) -> list[str]:
    return _row(r.id[:8], fmt.safe(r.name)[:30], str(r.status), r.started_at, r.duration_s,
                r.energy_j, r.energy_band_j, r.co2e_g, r.region or "")  # fmt: skip


def _job_row(job: JobSummary) -> list[str]:
    return _row(job.job_id, _job_name(job) + (" (!)" if job.warnings else ""), job.status,
                job.started_at, job.duration_s, job.energy_j, job.energy_band_j, job.co2e_g,
                ",".join(job.regions))  # fmt: skip


def _job_name(job: JobSummary) -> str:
    return f"job: {job.rank_count} rank(s) on {len(job.hosts)} host(s)"


def _rank_row(job: JobSummary, rank: JobRank) -> list[str]:
    from wattwise.cli.commands.show import rank_energy

    who = f"rank {rank.rank}" if rank.rank is not None else f"{rank.role} run"
    time_s = (rank.ended_at - rank.started_at) if rank.ended_at is not None else None
    return [
        "  " + rank.run_id[:8],
        f"  {who} on {rank.host}",
        rank.status,
        _started(rank.started_at),
        fmt.duration(time_s) if time_s is not None else "-",
        rank_energy(rank),
        fmt.carbon(rank.co2e_g),
        "",
    ]


def _job_json(job: JobSummary, *, ranks: bool) -> dict[str, Any]:
    """A job's entry in ``runs --json``: ``show --job JOB --json``'s object with ``kind``
    ``job``, ``id`` (the job id), ``name`` (its line's text) and ``region`` (its runs' one
    region, else None) first, so that the fields a run's entry has mean the same; its
    ranks and devices only with ``--ranks``."""
    data: dict[str, Any] = {
        "kind": "job", "id": job.job_id, "name": _job_name(job),
        "region": job.regions[0] if len(job.regions) == 1 else None, **job.to_dict(),
    }  # fmt: skip
    if not ranks:
        del data["ranks"], data["devices"]
    return data


def _study_counts(line: StudyLine) -> tuple[int | None, int | None, float | None]:
    """Pruned and failed trials and the best value, from the study's summary (written when
    it ends; None while it runs)."""
    from wattwise.tuning import StudyRecord

    record = StudyRecord.from_record(line.run.record)
    if record is None:
        return None, None, None
    counts = record.n_trials or {}
    best = record.best.get("value") if isinstance(record.best, dict) else None
    best = float(best) if isinstance(best, (int, float)) else None
    return counts.get("pruned"), counts.get("fail"), best


def _study_name(line: StudyLine) -> str:
    pruned, failed, best = _study_counts(line)
    parts = [f"{line.trials} trial(s)"]
    if line.running:
        parts.append(f"{line.running} running")
    if pruned is not None:
        parts.append(f"{pruned} pruned")
    if failed:
        parts.append(f"{failed} failed")
    if best is not None:
        parts.append(f"best {best:.6g}")
    return f"study {fmt.safe(line.run.name)[:30]}: {', '.join(parts)}"


def _study_row(line: StudyLine) -> list[str]:
    r = line.run
    return _row(r.id[:8], _study_name(line), str(r.status), r.started_at, r.duration_s,
                line.energy_j, line.energy_band_j, line.co2e_g, r.region or "")  # fmt: skip


def _trial_row(r: RunRecord) -> list[str]:
    row = _run_row(r)
    return ["  " + row[0], "  " + row[1], *row[2:]]


def _study_json(line: StudyLine) -> dict[str, Any]:
    """A study's entry in ``runs --json``: its study run's object (``kind`` ``study``), its
    ``energy_j``/``co2e_g`` those of the study run plus its trials (the run's own as
    ``run_energy_j``/``run_co2e_g``), its trial counts and best value."""
    pruned, failed, best = _study_counts(line)
    return {
        **line.to_dict(), "pruned_trials": pruned, "failed_trials": failed, "best_value": best,
    }  # fmt: skip

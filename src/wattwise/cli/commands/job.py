"""``wattwise job reconcile JOB``: a SLURM job's ledger energy beside ``sacct``'s.

Runs ``sacct`` for the job (or reads its saved output with ``--sacct-file``), prints both
figures, their difference and what each covers, and stores the comparison on the job's runs
(annotation ``sacct``, shown by ``wattwise show JOB``). See :mod:`wattwise.slurm`.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING

from wattwise.cli import _format as fmt

if TYPE_CHECKING:
    from wattwise.slurm import Reconciliation, StepReconciliation

HELP = "SLURM jobs: reconcile the ledger's energy with SLURM's accounting (sacct)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Sub-actions of ``wattwise job``."""
    common = argparse.ArgumentParser(add_help=False)
    # --store and --debug also after the action (as after any verb).
    common.add_argument(
        "--store",
        metavar="URL",
        default=argparse.SUPPRESS,
        help="ledger path or URL (default: the project's, or $WATTWISE_STORE)",
    )
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show the traceback of an error")  # fmt: skip
    sub = parser.add_subparsers(
        dest="action", metavar="ACTION", required=True, parser_class=type(parser)
    )
    rec = sub.add_parser(
        "reconcile", parents=[common],
        help="compare a finished SLURM job's energy in the ledger with sacct's "
        "ConsumedEnergyRaw, say what each covers, and store it on the job's runs",
        description="Runs 'sacct -P -n -j JOB --format JobID,JobName,NodeList,Elapsed,"
        "ConsumedEnergyRaw,AllocTRES,State', puts SLURM's energy of each step beside the "
        "ledger's, and stores the comparison on the job's runs (shown by 'wattwise show "
        "JOB'). A step SLURM did not measure (no energy plugin) is reported as such, not as "
        "0 J.",
    )  # fmt: skip
    rec.add_argument(
        "job", metavar="JOB",
        help="SLURM job id as sacct prints it: 812 (every step in the ledger; a "
        "heterogeneous job's leader id: every component's steps), 812.0 (one step), 700_3 "
        "(an array task), 900+1 (one component of a heterogeneous job), or the ledger's job "
        "id (slurm:812.0, or a WATTWISE_JOB_ID the job ran under inside SLURM)",
    )  # fmt: skip
    rec.add_argument(
        "--sacct-file", metavar="FILE", default=None,
        help="read the output of 'sacct -P -n -j JOB --format ...' (as above) saved on the "
        "cluster, instead of running sacct here ('-': standard input)",
    )  # fmt: skip
    rec.add_argument(
        "--no-store", action="store_true",
        help="print the comparison without storing it on the job's runs",
    )  # fmt: skip
    rec.add_argument("--json", action="store_true", help="machine-readable output")


def _read(path: str) -> str:
    if path == "-":
        return sys.stdin.read()
    with open(path, encoding="utf-8", errors="replace") as handle:
        return handle.read()


def main(args: argparse.Namespace) -> int:
    """Reconcile."""
    from wattwise.slurm import reconcile
    from wattwise.store import open_store

    sacct_output = _read(args.sacct_file) if args.sacct_file is not None else None
    store = open_store(args.store, readonly=args.no_store)
    try:
        result = reconcile(store, args.job, sacct_output=sacct_output, annotate=not args.no_store)
        where = fmt.ledger(store)
    finally:
        store.close()
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
        return 0
    lines = [f"SLURM job {fmt.safe(result.job)}: ledger {where}"]
    for step in result.steps:
        theirs = (
            fmt.energy(step.sacct_energy_j)
            if step.sacct_energy_j is not None
            else "not measured by SLURM"
        )
        line = (
            f"  step {fmt.safe(step.step)}  ({len(step.run_ids)} run(s), "
            f"{fmt.safe(step.ledger_job_id)}): ledger {fmt.energy(step.ledger_energy_j)}; "
            f"sacct {theirs}"
        )
        if step.difference_j is not None:
            line += f"; difference (sacct - ledger) {_signed(step.difference_j)}"
        if len(step.sacct_lines) > 1:  # a heterogeneous step: sacct's components, added
            line += f" (sacct lines {', '.join(fmt.safe(x) for x in step.sacct_lines)})"
        lines.append(line)
        if step.note:
            lines.append(f"    {fmt.safe(step.note)}")
    compared = {x for t in result.steps for x in (t.step, *t.sacct_lines)}
    others = [s for s in result.sacct_steps if s.job_id not in compared]
    if others:
        listed = ", ".join(f"{s.job_id} ({s.name}, {s.state})" for s in others)
        lines.append(f"  not in the ledger: {listed}")
    lines.extend(_components(result))
    if result.sacct_energy_j is not None and result.difference_j is not None:
        lines.append(
            f"Total: ledger {fmt.energy(result.ledger_energy_j)}, sacct "
            f"{fmt.energy(result.sacct_energy_j)}, difference (sacct - ledger) "
            f"{_signed(result.difference_j)}"
        )
    else:
        lines.append(
            f"Total: ledger {fmt.energy(result.ledger_energy_j)}; SLURM: not measured by SLURM "
            f"(energy plugin: {fmt.safe(result.energy_plugin or 'unknown')})"
        )
    lines.append(f"  sacct covers: {result.covers['sacct']}")
    lines.append(f"  ledger covers: {result.covers['ledger']}")
    if args.no_store:
        lines.append("Not stored (--no-store).")
    else:
        runs = sum(len(s.run_ids) for s in result.steps)
        lines.append(
            f"Stored on {runs} run(s) as annotation 'sacct' (see: wattwise show "
            f"{fmt.safe(result.steps[0].ledger_job_id)})."
        )
    print(fmt.lines(lines))
    return 0


def _components(result: Reconciliation) -> list[str]:
    """One line per component of a heterogeneous job (none for an ordinary job)."""
    parts: dict[str, list[StepReconciliation]] = {}
    for step in result.steps:
        job = step.step.split(".")[0]
        if "+" in job:
            parts.setdefault(job, []).append(step)
    if len(parts) < 2:
        return []
    lines = []
    for job, steps in sorted(parts.items()):
        ours = sum(s.ledger_energy_j for s in steps)
        theirs = (
            fmt.energy(sum(s.sacct_energy_j or 0.0 for s in steps))
            if all(s.sacct_energy_j is not None for s in steps)
            else "not measured by SLURM"
        )
        lines.append(
            f"Component {fmt.safe(job)}: {len(steps)} step(s), ledger {fmt.energy(ours)}; "
            f"sacct {theirs}"
        )
    return lines


def _signed(joules: float) -> str:
    return ("-" if joules < 0 else "+") + fmt.energy(abs(joules))

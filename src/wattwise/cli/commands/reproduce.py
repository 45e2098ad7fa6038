"""``wattwise reproduce RUN``: re-run a recorded command at its commit and diff, and compare."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Iterator
from typing import Any

from wattwise.cli import _args
from wattwise.cli import _format as fmt

HELP = "re-run a recorded command in a clean worktree at its commit and diff; compare metrics"

_MAX_DRIFT_ROWS = 15


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``wattwise reproduce``."""
    parser.add_argument(
        "run", type=_args.run_ref, help="run id or unique prefix (4+ characters)"
    )
    parser.add_argument(
        "--check", action="store_true",
        help="compare the final metrics of both runs; exit 1 if they differ",
    )  # fmt: skip
    parser.add_argument(
        "--tolerance", action="append", metavar="TOL",
        help="allowed difference: 0.01 (absolute), 5%% (relative), acc=0.01 (one metric); "
        "repeatable; default 0 (exact up to float rounding)",
    )  # fmt: skip
    parser.add_argument(
        "--region", metavar="REGION",
        help="region of the new run (FR, US-CAL-CISO, gcp:europe-west1); default: the "
        "original run's, when it was given rather than guessed",
    )  # fmt: skip
    parser.add_argument(
        "--json", action="store_true",
        help="machine-readable result on stdout (the command's own output goes to stderr)",
    )  # fmt: skip


@contextlib.contextmanager
def _stdout_to_stderr(is_active: bool) -> Iterator[None]:
    """Send the command's standard output to stderr, so that --json output stays clean."""
    if not is_active:
        yield
        return
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def _warn(text: str) -> None:
    print(f"wattwise: warning: {fmt.safe(text)}", file=sys.stderr)


def _warn_lines(lines: list[str]) -> None:
    """A warning over several lines (a table), each line made safe."""
    print(fmt.lines([f"wattwise: warning: {lines[0]}", *lines[1:]]), file=sys.stderr)


def drift_table(plan: Any) -> list[str] | None:
    """The package-drift warning's lines with its table, or None when nothing differs."""
    rows = [[d.name, d.recorded or "-", d.current or "not installed"] for d in plan.drift]
    recorded_py, current_py = plan.python
    if recorded_py and recorded_py != current_py:
        rows.insert(0, ["python", recorded_py, current_py])
    if not rows:
        return None
    shown = rows[:_MAX_DRIFT_ROWS]
    more = len(rows) - len(shown)
    lines = [
        f"{len(rows)} package version{'s' if len(rows) != 1 else ''} differ from the record; "
        "results may differ:",
        *fmt.table(["PACKAGE", "RECORDED", "NOW"], shown).splitlines(),
    ]
    if more:
        lines.append(f"... and {more} more (wattwise show {plan.run.id[:8]} --json lists all)")
    return lines


def _comparison_lines(result: Any) -> list[str]:
    comparison = result.comparison
    lines = []
    if comparison.metrics:
        rows = [
            [
                m.key, f"{m.original:.6g}", "-" if m.new is None else f"{m.new:.6g}",
                "-" if m.difference is None else f"{m.difference:+.3g}", str(m.tolerance),
                "ok" if m.is_within else "DIFFERS",
            ]
            for m in comparison.metrics
        ]  # fmt: skip
        headers = ["METRIC", "ORIGINAL", "NEW", "DIFF", "TOLERANCE", ""]
        lines += fmt.table(headers, rows).splitlines()
    else:
        lines.append("The original run logged no metrics; only the exit codes were compared.")
    if comparison.extra_keys:
        lines.append(f"Only in the new run: {', '.join(comparison.extra_keys)}.")
    return lines


def main(args: argparse.Namespace) -> int:
    """Reproduce the run; exit 0/1 on the check, else the command's exit code."""
    from wattwise.repro import Tolerances, execute, prepare
    from wattwise.store import open_store

    tolerances = Tolerances.parse(args.tolerance) if args.check else None
    if args.region:
        from wattwise.carbon import parse_region

        parse_region(args.region)  # a bad region stops here, before any worktree is made
    store = open_store(args.store)
    try:
        plan = prepare(args.run, store=store)
        original = plan.run
        diff = (original.record.get("code") or {}).get("diff") or {}
        patch = f" + diff of {diff.get('files', '?')} file(s)" if plan.diff else ""
        print(
            fmt.lines([
                f"wattwise: reproducing run {original.id[:8]} '{original.name}': "
                f"{' '.join(plan.argv)}",
                f"  at {plan.commit[:12]}{patch}, in {plan.relative_cwd} of a fresh worktree",
            ]),
            file=sys.stderr,
        )  # fmt: skip
        table = drift_table(plan)
        if table:
            _warn_lines(table)
        if plan.untracked:
            names = ", ".join(plan.untracked[:5]) + (" ..." if len(plan.untracked) > 5 else "")
            _warn(f"untracked files were not recorded and are absent from the worktree: {names}")
        with _stdout_to_stderr(args.json):
            result = execute(
                plan, store=store, tolerances=tolerances, on_warning=_warn, region=args.region
            )
    finally:
        store.close()
    if args.json:
        data = result.to_dict()
        data["drift"] = [d.to_dict() for d in plan.drift]
        print(json.dumps(data, indent=2))
    else:
        lines = [
            f"Run {result.new_id[:8]} reproduces run {result.original_id[:8]}: exit code "
            f"{result.exit_code} (original {result.original_exit_code}); energy "
            f"{fmt.energy(result.new_energy_j)} (original {fmt.energy(result.original_energy_j)})."
        ]
        if result.comparison is not None:
            lines += _comparison_lines(result)
            n = len(result.comparison.metrics)
            if result.is_reproduced:
                lines.append(
                    f"Reproduced: {n} final metric{'s' if n != 1 else ''} within tolerance "
                    f"{tolerances} and the same exit code."
                )
            else:
                bad = [m.key for m in result.comparison.metrics if not m.is_within]
                why = (
                    f"{len(bad)} of {n} metrics differ ({', '.join(bad)})"
                    if bad
                    else ("the exit code differs")
                )
                lines.append(f"Not reproduced: {why}.")
        print(fmt.lines(lines))
    if args.check:
        return 0 if result.is_reproduced else 1
    return result.exit_code

"""The fault table: what each ledger fault does to a job measured by wattwise.

One command (as root for the real tmpfs and read-only mounts; elsewhere the full disk is
injected into SQLite and the read-only faults are left out):

    .venv/bin/python benchmarks/fault_table.py            # Markdown table on stdout
    .venv/bin/python benchmarks/fault_table.py --json

For each fault (tests/safety/faults.py) and each way in (``wattwise run -- python job.py``
and ``with wattwise.track():`` in a subprocess), it runs a job that prints known bytes,
logs metrics and exits 7, then removes the fault, runs ``wattwise doctor --repair`` and
reads the ledger: job exit code, job output byte-identical, start delay, energy and metrics
kept, and the warning lines shown.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "safety"))

from faults import EXIT_CODE, FAULTS, can_mount, run_job, scratch


def _short(line: str, base: Path) -> str:
    """A warning line without its source location and scratch paths, cut to ~110 chars."""
    text = re.sub(r"^.*?StoreWarning: ", "", line).replace("wattwise: warning: ", "")
    text = text.replace("wattwise: ", "")
    text = re.sub(re.escape(str(base)) + r"/[^ ]*/project/", "", text)
    return text if len(text) <= 110 else text[:107] + "..."


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--only", help="comma-separated fault names")
    args = parser.parse_args()
    mount = can_mount()
    wanted = set(args.only.split(",")) if args.only else None
    rows = []
    with scratch() as base:
        for fault in FAULTS:
            if wanted and fault.name not in wanted:
                continue
            if fault.needs_mount and not mount:
                rows.append({"fault": fault.label, "skipped": "needs root to mount"})
                continue
            for mode in ("run", "track"):
                out = run_job(fault, mode, base)
                rows.append({
                    "fault": fault.label, "mode": mode, "exit_code": out.returncode,
                    "exit_code_kept": out.returncode == EXIT_CODE,
                    "output_intact": out.stdout_intact,
                    "start_delay_s": round(out.start_delay_s, 2),
                    "energy_kept": out.energy_kept,
                    "metrics_kept": sorted(out.metrics),
                    "warnings": len(out.warnings),
                    "message": _short(out.warnings[0], base) if out.warnings else "",
                })  # fmt: skip
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print("| fault | way in | job exit code | job output intact | start delay | energy kept "
          "| metrics kept | warning lines: count, first |")
    print("|---|---|---|---|---|---|---|---|")
    for row in rows:
        if "skipped" in row:
            print(f"| {row['fault']} | - | skipped: {row['skipped']} | | | | | |")
            continue
        way = "`wattwise run`" if row["mode"] == "run" else "`track()`"
        message = row["message"].replace("|", "\\|")
        print(f"| {row['fault']} | {way} | {row['exit_code']} (job's: {EXIT_CODE}) | "
              f"{'yes' if row['output_intact'] else 'NO'} | {row['start_delay_s']:.2f} s | "
              f"{'yes' if row['energy_kept'] else 'NO'} | {', '.join(row['metrics_kept'])} | "
              f"{row['warnings']}: {message} |")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

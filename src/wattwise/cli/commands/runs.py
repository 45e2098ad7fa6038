"""``wattwise runs``: the ledger, one line per run."""

from __future__ import annotations

import argparse
import json

from wattwise.cli import _args
from wattwise.cli import _format as fmt

HELP = "list the runs in the ledger"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``wattwise runs``."""
    parser.add_argument("--status", choices=["running", "finished", "failed", "crashed"])
    parser.add_argument(
        "--limit", type=_args.positive_int, metavar="N", help="newest N runs only (N >= 1)"
    )
    parser.add_argument("--json", action="store_true", help="machine-readable output")


def main(args: argparse.Namespace) -> int:
    """Print the runs."""
    from wattwise.store import iso_utc, open_store

    store = open_store(args.store)
    try:
        runs = store.list_runs(status=args.status, limit=args.limit)
    finally:
        store.close()
    if args.json:
        print(json.dumps([r.to_dict() for r in runs], indent=2))
        return 0
    if not runs:
        print("No runs yet. Start one with: wattwise run -- python train.py")
        return 0
    rows = [
        [
            r.id[:8],
            fmt.safe(r.name)[:30],
            str(r.status),
            (iso_utc(r.started_at) or "")[:19].replace("T", " "),
            fmt.duration(r.duration_s),
            fmt.with_band(r.energy_j, r.energy_band_j),
            fmt.carbon(r.co2e_g),
            r.region or "",
        ]
        for r in runs
    ]
    headers = ["ID", "NAME", "STATUS", "STARTED (UTC)", "TIME", "ENERGY", "CARBON", "REGION"]
    print(fmt.table(headers, rows))
    return 0

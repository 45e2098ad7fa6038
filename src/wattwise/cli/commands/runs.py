"""``wattwise runs``: the ledger, one line per run, newest first, a page at a time."""

from __future__ import annotations

import argparse
import json
import sys

from wattwise.cli import _args
from wattwise.cli import _format as fmt

HELP = "list the runs in the ledger (newest first, 20 at a time; --all for every run)"

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
    parser.add_argument("--json", action="store_true", help="machine-readable output")


def main(args: argparse.Namespace) -> int:
    """Print a page of runs, newest first, and how many more there are."""
    from wattwise.store import iso_utc, open_store

    limit = None if args.all else (args.limit or DEFAULT_LIMIT)
    store = open_store(args.store, readonly=True)
    try:
        runs = store.list_runs(
            status=args.status, limit=limit, offset=args.offset, newest_first=True
        )
        total = None
        if limit is not None and (len(runs) == limit or args.offset):
            total = store.count_runs(status=args.status)
    finally:
        store.close()
    more = max(0, total - args.offset - len(runs)) if total is not None else 0
    hint = (
        f"{more} more run(s); use --limit N, --offset {args.offset + len(runs)} or --all."
        if more else ""
    )  # fmt: skip
    if args.json:
        print(json.dumps([r.to_dict() for r in runs], indent=2))
        if hint:
            print(f"wattwise: {hint}", file=sys.stderr)
        return 0
    if not runs:
        if args.offset and total:
            print(f"No runs past the newest {args.offset} ({total} in all).")
        else:
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
    if hint:
        print(hint)
    return 0

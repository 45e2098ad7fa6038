"""``wattwise footprint``: the whole project's energy and carbon, failed runs included."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING

from wattwise.cli import _format as fmt

if TYPE_CHECKING:
    from wattwise.store import Totals
    from wattwise.store._reuse import ReuseTotals

HELP = "project totals: final runs versus everything it took (tuning, failed, crashed)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``wattwise footprint``."""
    parser.add_argument("--json", action="store_true", help="machine-readable output")


def main(args: argparse.Namespace) -> int:
    """Print the footprint."""
    from wattwise.store import open_store, project_footprint

    store = open_store(args.store)
    try:
        fp = project_footprint(store.list_runs(), saved_by_reuse=store.reuse_totals())
    finally:
        store.close()
    if args.json:
        print(json.dumps(fp.to_dict(), indent=2))
        return 0
    if fp.total.runs == 0:
        print("No runs yet. Start one with: wattwise run -- python train.py")
        _print_saved(fp.saved_by_reuse)
        return 0
    headers = ["RUNS", "TIME", "ENERGY", "CARBON (operational)"]
    print(fmt.safe(f"Project footprint ({store.path.parent.parent}):"))
    print(fmt.table(["STATUS", *headers], _rows(fp.by_status, fp.total)))
    print()
    print(fmt.table(["ROLE", *headers], _rows(fp.by_role, fp.total)))
    print(
        f"{fp.not_finished_share:.0%} of the energy went to runs that did not finish "
        f"(failed, crashed or still running); {fp.beyond_final_share:.0%} to anything but "
        "final runs (tuning included)."
    )
    _print_saved(fp.saved_by_reuse)
    return 0


def _rows(groups: dict[str, Totals], total: Totals) -> list[list[str]]:
    return [
        [
            label, str(t.runs), fmt.duration(t.duration_s),
            fmt.with_band(t.energy_j, t.energy_band_j),
            fmt.with_band(t.co2e_g, t.co2e_band_g, fmt.carbon),
        ]
        for label, t in [*sorted(groups.items()), ("all runs", total)]
    ]


def _print_saved(saved: ReuseTotals) -> None:
    """The "saved by reuse" line, when the artifact cache was hit."""
    if saved.hits:
        print(
            f"Saved by reuse: {saved.hits} cache hit{'s' if saved.hits != 1 else ''} avoided "
            f"{fmt.energy(saved.energy_j)} and {fmt.carbon(saved.co2e_g)} "
            f"({fmt.duration(saved.duration_s)} of compute); not subtracted from the totals."
        )

"""``wattwise footprint``: the whole project's energy and carbon, failed runs included."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING

from wattwise.cli import _format as fmt

if TYPE_CHECKING:
    from wattwise.store._reuse import ReuseTotals

HELP = "project totals: finished runs versus everything it took (failed, crashed)"


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
    rows = []
    for label, totals in [*sorted(fp.by_status.items()), ("all runs", fp.total)]:
        rows.append([
            label, str(totals.runs), fmt.duration(totals.duration_s),
            fmt.with_band(totals.energy_j, totals.energy_band_j),
            fmt.with_band(totals.co2e_g, totals.co2e_band_g, fmt.carbon),
        ])  # fmt: skip
    print(f"Project footprint ({store.path.parent.parent}):")
    print(fmt.table(["STATUS", "RUNS", "TIME", "ENERGY", "CARBON (operational)"], rows))
    share = fp.not_finished_share
    print(
        f"{share:.0%} of the energy went to runs that did not finish (failed, crashed or "
        "still running)."
    )
    _print_saved(fp.saved_by_reuse)
    return 0


def _print_saved(saved: ReuseTotals) -> None:
    """The "saved by reuse" line, when the artifact cache was hit."""
    if saved.hits:
        print(
            f"Saved by reuse: {saved.hits} cache hit{'s' if saved.hits != 1 else ''} avoided "
            f"{fmt.energy(saved.energy_j)} and {fmt.carbon(saved.co2e_g)} "
            f"({fmt.duration(saved.duration_s)} of compute); not subtracted from the totals."
        )

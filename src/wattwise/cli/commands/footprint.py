"""``wattwise footprint``: the whole project's energy and carbon, failed runs included."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING

from wattwise.cli import _format as fmt

if TYPE_CHECKING:
    from wattwise.store import BaseRunStore, ReuseTotals, Totals

HELP = "project totals: final runs versus everything it took (tuning, failed, crashed)"


#: What ``--by`` groups by: a person, a machine, a tag (a run counts once per tag), the UTC
#: month of the start.
GROUPINGS = ("user", "host", "tag", "month")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``wattwise footprint``."""
    parser.add_argument(
        "--by", choices=GROUPINGS, metavar="{user,host,tag,month}",
        help="one line per person, machine, tag (a run counts once per tag) or UTC month "
        "(newest first)",
    )  # fmt: skip
    parser.add_argument("--json", action="store_true", help="machine-readable output")


def main(args: argparse.Namespace) -> int:
    """Print the footprint (summed by the store: no run is loaded)."""
    from wattwise.store import open_store, store_footprint

    store = open_store(args.store, readonly=True)
    try:
        if args.by is not None:
            return _print_by(store, args.by, as_json=args.json)
        fp = store_footprint(store)
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
    print(fmt.safe(f"Project footprint ({ledger_name(store)}):"))
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


def ledger_name(store: BaseRunStore) -> str:
    """What identifies the ledger: the project folder for the project's own SQLite ledger
    (``<project>/.wattwise/ledger.db``), the file for a SQLite ledger elsewhere, and the
    URL for any other (a server's carries no password: ``store.url`` never does)."""
    from wattwise.store import ledger_path

    url = store.url
    if not url.startswith("sqlite:///"):
        return url
    ledger = Path(url[len("sqlite:///") :])
    project = ledger.parent.parent
    if ledger_path(environ={}, start=project).resolve() == ledger.resolve():
        return str(project)
    return str(ledger)


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


def _print_by(store: BaseRunStore, by: str, *, as_json: bool) -> int:
    """``footprint --by``: one row per group, with the share beyond final runs."""
    from wattwise.store import footprint_by

    groups = footprint_by(store, by)
    if by == "month":  # newest first, as every list the CLI prints (like git log)
        groups = [*(g for g in reversed(groups) if g.group is not None),
                  *(g for g in groups if g.group is None)]  # fmt: skip
    if as_json:
        print(json.dumps({"by": by, "groups": [g.to_dict() for g in groups]}, indent=2))
        return 0
    if not groups:
        print("No runs yet. Start one with: wattwise run -- python train.py")
        return 0
    none_label = {"user": "(not recorded)", "tag": "(untagged)"}.get(by, "(unknown)")
    # By user: what each one's cache hits saved, when anyone's did.
    saved = any(g.saved_by_reuse is not None and g.saved_by_reuse.hits for g in groups)
    rows = [
        [
            g.group if g.group is not None else none_label, str(g.total.runs),
            fmt.duration(g.total.duration_s),
            fmt.with_band(g.total.energy_j, g.total.energy_band_j),
            fmt.with_band(g.total.co2e_g, g.total.co2e_band_g, fmt.carbon),
            f"{g.beyond_final_share:.0%}",
            *([_saved_cell(g.saved_by_reuse)] if saved else []),
        ]
        for g in groups
    ]  # fmt: skip
    headers = [by.upper(), "RUNS", "TIME", "ENERGY", "CARBON (operational)", "BEYOND FINAL"]
    if saved:
        headers.append("SAVED BY REUSE")
    print(fmt.table(headers, rows))
    if by == "tag":
        print("A run with several tags counts under each: the rows add up to more than the "
              "project.")  # fmt: skip
    print("BEYOND FINAL: share of the energy that went to anything but final runs (tuning, "
          "failed, crashed).")  # fmt: skip
    if saved:
        print("SAVED BY REUSE: energy the user's cache hits avoided (not subtracted from the "
              "totals); (not recorded): hits outside any run.")  # fmt: skip
    return 0


def _saved_cell(saved: ReuseTotals | None) -> str:
    if saved is None or not saved.hits:
        return "-"
    return f"{fmt.energy(saved.energy_j)} ({saved.hits} hit{'s' if saved.hits != 1 else ''})"

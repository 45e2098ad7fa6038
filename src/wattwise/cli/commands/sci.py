"""``wattwise sci``: Software Carbon Intensity per functional unit, every term sourced."""

from __future__ import annotations

import argparse
import json

from wattwise.cli import _format as fmt
from wattwise.cli.commands.report import (
    add_sci_arguments,
    add_selection_arguments,
    sci_options,
    selection,
)

HELP = "software carbon intensity (GSF SCI / ISO/IEC 21031): (E x I + M) / R, with sources"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``wattwise sci``."""
    add_selection_arguments(parser)
    add_sci_arguments(parser, required=True)
    parser.add_argument("--json", action="store_true", help="machine-readable output")


def main(args: argparse.Namespace) -> int:
    """Compute and print the SCI."""
    from wattwise.report import compute_sci, select_runs
    from wattwise.store import open_store

    store = open_store(args.store)
    try:
        chosen = select_runs(store, **selection(args))
    finally:
        store.close()
    result = compute_sci(chosen.counted, **sci_options(args))
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
        return 0
    unit = result.functional_unit
    lines = [
        f"SCI = (E x I + M) / R = {result.sci_g_per_unit:.6g} gCO2e per {unit}  "
        f"(R = {result.count:g} {unit} over {result.runs} run(s), {chosen.scope})"
    ]
    for term in result.terms[:-1]:
        lines.append(f"  {term.symbol:<3} {term.value:>12.6g} {term.unit:<16} {term.name}")
        lines.append(f"      source: {term.source}")
    for share in result.embodied:
        lines.append(
            f"  M on {share.host}: TE {share.te_kgco2e:.6g} kgCO2e x TiR "
            f"{share.time_reserved_h:.4g} h / EL {share.expected_lifespan_h:.6g} h x RR/ToR "
            f"{share.share:g} = {share.m_g:.6g} gCO2e"
        )
    lines.append("  boundary: includes " + "; ".join(result.boundary["included"]))
    lines.append("            excludes " + "; ".join(result.boundary["excluded"]))
    print(fmt.lines(lines))
    return 0

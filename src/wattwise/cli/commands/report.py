"""``wattwise report``: one self-contained HTML page (or Markdown, JSON) from the ledger."""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path
from typing import Any

from wattwise.cli import _args
from wattwise.cli import _format as fmt
from wattwise.exceptions import InvalidParameterError, WattwiseError

HELP = "write a report (HTML, Markdown or JSON) for a run, a study or the whole project"

#: The formats and the ``-o`` extensions come from the exporter registry
#: (:mod:`wattwise.report._exporters`), shared with ``wattwise export``.


def add_selection_arguments(parser: argparse.ArgumentParser) -> None:
    """``[RUN] [--study S] [--project]``: what a report or an export covers."""
    parser.add_argument(
        "run", nargs="?", type=_args.run_ref,
        help="run id or unique prefix, 4+ characters (default: the project)",
    )  # fmt: skip
    parser.add_argument(
        "--study", metavar="S", type=_args.run_ref, help="a tuning study (its driver run id)"
    )
    parser.add_argument(
        "--project", action="store_true", help="every run of the project (the default)"
    )


def selection(args: argparse.Namespace) -> dict[str, Any]:
    """``run=``/``study=`` keyword arguments from the selection options.

    Raises:
        InvalidParameterError: ``--project`` combined with a run or a study.
    """
    if args.project and (args.run or args.study):
        msg = "--project covers every run; drop it, or drop the run/--study to report them all."
        raise InvalidParameterError(msg)
    return {"run": args.run, "study": args.study}


def add_sci_arguments(parser: argparse.ArgumentParser, *, required: bool) -> None:
    """The SCI options shared by ``report`` and ``sci``."""
    group = parser.add_argument_group("SCI (software carbon intensity)")
    group.add_argument(
        "--functional-unit", required=required, default=None, metavar="NAME",
        help="what one unit of R is: 'training run', '1k inferences', ... (default: "
        "training run)",
    )  # fmt: skip
    group.add_argument(
        "--count", type=float, required=required, default=None, metavar="R",
        help="how many functional units the runs delivered (default: the final runs of a "
        "project or study, 1 for a run)",
    )  # fmt: skip
    group.add_argument("--te-kgco2e", type=float, metavar="KG",
                       help="total embodied emissions of the hardware (overrides the tables)")
    group.add_argument("--lifetime-years", type=float, metavar="Y",
                       help="expected hardware lifespan (default 4, CCF)")
    group.add_argument("--share", type=float, metavar="F",
                       help="resource share RR/ToR in (0, 1] (default 1: whole machine)")
    group.add_argument("--instance-type", metavar="T",
                       help="cloud instance type, for the CCF per-instance embodied table")


def sci_options(args: argparse.Namespace) -> dict[str, Any]:
    """Keyword arguments for ``compute_sci``/``build_report`` from the SCI options."""
    return {
        "functional_unit": args.functional_unit, "count": args.count,
        "te_kgco2e": args.te_kgco2e, "lifetime_years": args.lifetime_years,
        "share": args.share, "instance_type": args.instance_type,
    }  # fmt: skip


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``wattwise report``."""
    from wattwise.report import exporters, extension_map, format_names

    add_selection_arguments(parser)
    helps = ", ".join(f"{x.name} ({x.help})" for x in exporters("report"))
    parser.add_argument(
        "--format", choices=format_names("report"),
        help=f"{helps} (default: from -o's extension, else html)",
    )  # fmt: skip
    parser.add_argument(
        "-o", "--output", metavar="PATH",
        help=f"file to write: {', '.join(extension_map('report'))} (default: report.html "
        "here; '-' for standard output)",
    )  # fmt: skip
    parser.add_argument("--metric", help="objective to plot against energy for studies")
    parser.add_argument("--title", help="heading of the report")
    add_sci_arguments(parser, required=False)


def main(args: argparse.Namespace) -> int:
    """Build the report and write it."""
    from wattwise.report import ExportSource, extension_map, format_names, get_exporter
    from wattwise.store import open_store

    chosen = _args.output_format(args.output, args.format, extension_map("report"),
                                 default="html", choices=format_names("report"))  # fmt: skip
    exporter = get_exporter(chosen)
    store = open_store(args.store)
    try:
        source = ExportSource(store, **selection(args), report_options={
            "metric": args.metric, "title": args.title, **sci_options(args)})  # fmt: skip
        if not exporter.extensions:  # a registered format that writes no file
            for line in exporter.write(source, None):
                print(fmt.safe(line))
            return 0
        buffer = io.StringIO()
        exporter.write(source, buffer)
        report = source.report
    finally:
        store.close()
    text = buffer.getvalue()
    target = args.output or f"report{exporter.extensions[0]}"
    if target == "-":
        sys.stdout.write(fmt.document(text, sys.stdout))
        return 0
    path = Path(target)
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as err:
        msg = f"Cannot write the report to {path}: {err.strerror}. Pass -o with a writable path."
        raise WattwiseError(msg) from err
    h = report.headline
    print(fmt.safe(
        f"Wrote {path.resolve()}: {report.title}, {h.runs} run(s), "
        f"{fmt.with_band(h.energy_j, h.energy_band_j)}, {fmt.carbon(h.co2e_g)} (operational)."
    ))
    return 0

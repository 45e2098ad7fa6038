"""``wattwise report``: one self-contained HTML page (or Markdown, JSON) from the ledger."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from wattwise.cli import _args
from wattwise.cli import _format as fmt
from wattwise.exceptions import InvalidParameterError, WattwiseError

HELP = "write a report (HTML, Markdown or JSON) for a run, a study or the whole project"

FORMATS = ("html", "md", "json")
#: What ``-o``'s extension says, unless ``--format`` says otherwise.
BY_EXTENSION = {".html": "html", ".htm": "html", ".md": "md", ".markdown": "md",
                ".json": "json"}  # fmt: skip


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
        "--functional-unit", required=required, default=None if required else "training run",
        metavar="NAME", help="what one unit of R is: 'training run', '1k inferences', ...",
    )  # fmt: skip
    group.add_argument(
        "--count", type=float, required=required, default=None if required else 1.0,
        metavar="R", help="how many functional units the runs delivered",
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
    add_selection_arguments(parser)
    parser.add_argument(
        "--format", choices=FORMATS,
        help="html, md (Markdown) or json (default: from -o's extension, else html)",
    )  # fmt: skip
    parser.add_argument(
        "-o", "--output", metavar="PATH",
        help="file to write: .html, .md or .json (default: report.html here; '-' for "
        "standard output)",
    )  # fmt: skip
    parser.add_argument("--metric", help="objective to plot against energy for studies")
    parser.add_argument("--title", help="heading of the report")
    add_sci_arguments(parser, required=False)


def main(args: argparse.Namespace) -> int:
    """Build the report and write it."""
    from wattwise.report import build_report, render_html, render_json, render_markdown
    from wattwise.store import open_store

    chosen = _args.output_format(args.output, args.format, BY_EXTENSION, default="html",
                                 choices=FORMATS)  # fmt: skip
    store = open_store(args.store)
    try:
        report = build_report(store, metric=args.metric, title=args.title,
                              **selection(args), **sci_options(args))  # fmt: skip
    finally:
        store.close()
    renderers = {"html": render_html, "md": render_markdown, "json": render_json}
    text = renderers[chosen](report)
    target = args.output or f"report.{chosen}"
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

"""``wattwise export``: the ledger in formats the field reads (HF card, CodeCarbon, MLflow)."""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path
from typing import Any

from wattwise.cli import _args
from wattwise.cli import _format as fmt
from wattwise.cli.commands.report import add_selection_arguments, selection
from wattwise.exceptions import WattwiseError

HELP = "export to a Hugging Face model card, CodeCarbon's emissions.csv, BoAmps or MLflow"

#: The formats and the ``-o`` extensions come from the exporter registry
#: (:mod:`wattwise.report._exporters`), shared with ``wattwise report``.



def _formats() -> tuple[tuple[str, ...], dict[str, str]]:
    """The formats of ``export`` in the exporter registry, and what ``-o``'s extension says
    unless ``--format`` says otherwise (MLflow writes no file: it has no extension)."""
    from wattwise.report import extension_map, format_names

    return format_names("export"), extension_map("export")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``wattwise export``."""
    from wattwise.report import exporters

    formats, by_extension = _formats()
    helps = ", ".join(f"{x.name} ({x.help})" for x in exporters("export"))
    implied = ", ".join(f"{ext} {name}" for ext, name in by_extension.items())
    parser.add_argument(
        "--format", choices=formats,
        help=f"{helps} (default: from -o's extension: {implied})",
    )  # fmt: skip
    add_selection_arguments(parser)
    parser.add_argument("-o", "--output", metavar="PATH",
                        help="file to write (default: standard output)")  # fmt: skip
    card = parser.add_argument_group("hf-card")
    card.add_argument("--training-type", choices=["fine-tuning", "pre-training"],
                      default="fine-tuning", help="co2_eq_emissions.training_type")
    card.add_argument("--include-embodied", action="store_true",
                      help="emissions = operational + embodied (SCI O + M); default operational")
    card.add_argument("--into", metavar="README", help="merge into this model card file")
    boamps = parser.add_argument_group("boamps")
    boamps.add_argument("--boamps-context", metavar="FILE",
                        help="JSON with what only you know (task, publisher...), merged in")
    cc = parser.add_argument_group("codecarbon-csv")
    cc.add_argument("--project-name", help="project_name column (default: the project folder)")
    ml = parser.add_argument_group("mlflow")
    ml.add_argument("--mlflow-uri", metavar="URI", help="tracking URI (default: "
                    "$MLFLOW_TRACKING_URI, else sqlite:///<project>/.wattwise/mlflow.db)")
    ml.add_argument("--experiment", default="wattwise", help="MLflow experiment name")


def _format(args: argparse.Namespace) -> str:
    """The export format: ``--format``, else from ``-o``'s extension (or ``--into``)."""
    from wattwise.cli._main import UsageError
    from wattwise.report import get_exporter

    formats, by_extension = _formats()
    given = args.format
    if given is None and args.into:
        given = "hf-card"
    chosen = _args.output_format(args.output, given, by_extension, default=None, choices=formats)
    if args.into and chosen != "hf-card":
        msg = f"--into merges a model card: it needs --format hf-card, not --format {chosen}"
        raise UsageError(msg)
    if not get_exporter(chosen).extensions and args.output not in (None, "-"):
        where = (
            " (it logs to a tracking server): drop -o, and choose the server with --mlflow-uri"
            if chosen == "mlflow" else ": drop -o"
        )  # fmt: skip
        msg = f"--format {chosen} writes no file{where}"
        raise UsageError(msg)
    return chosen


def _write(text: str, output: str | None) -> None:
    if output is None or output == "-":
        sys.stdout.write(fmt.document(text, sys.stdout))
        return
    try:
        Path(output).write_text(text, encoding="utf-8")
    except OSError as err:
        msg = f"Cannot write {output}: {err.strerror}. Pass -o with a writable path."
        raise WattwiseError(msg) from err
    print(fmt.safe(f"Wrote {Path(output).resolve()}"))


def _options(args: argparse.Namespace, chosen: str) -> dict[str, Any]:
    """The chosen format's own options from the command line."""
    if chosen == "hf-card":
        return {"training_type": args.training_type, "include_embodied": args.include_embodied,
                "into": args.into}  # fmt: skip
    if chosen == "codecarbon-csv":
        return {"project_name": args.project_name}
    if chosen == "boamps":
        return {"context": args.boamps_context}
    if chosen == "mlflow":
        return {"tracking_uri": args.mlflow_uri, "experiment_name": args.experiment}
    return {}


def main(args: argparse.Namespace) -> int:
    """Export through the format's exporter (``wattwise.report.get_exporter``)."""
    from wattwise.report import ExportSource, get_exporter
    from wattwise.store import open_store

    chosen = _format(args)
    exporter = get_exporter(chosen)
    options = _options(args, chosen)
    store = open_store(args.store)
    try:
        source = ExportSource(store, **selection(args))
        if not exporter.extensions or options.get("into"):
            lines = exporter.write(source, None, **options)
        else:
            buffer = io.StringIO()
            lines = exporter.write(source, buffer, **options)
            _write(buffer.getvalue(), args.output)
    finally:
        store.close()
    to_stdout = bool(exporter.extensions) and not options.get("into") and args.output in (
        None, "-")  # fmt: skip
    for line in lines:  # notes never mix into a document written to standard output
        print(fmt.safe(line), file=sys.stderr if to_stdout else sys.stdout)
    return 0

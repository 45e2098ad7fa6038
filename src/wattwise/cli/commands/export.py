"""``wattwise export``: the ledger in formats the field reads (HF card, CodeCarbon, MLflow)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from wattwise.cli import _args
from wattwise.cli import _format as fmt
from wattwise.cli.commands.report import add_selection_arguments, selection
from wattwise.exceptions import WattwiseError

HELP = "export to a Hugging Face model card, CodeCarbon's emissions.csv or MLflow"

FORMATS = ("hf-card", "codecarbon-csv", "mlflow")
#: What ``-o``'s extension says, unless ``--format`` says otherwise (MLflow writes no file).
BY_EXTENSION = {".md": "hf-card", ".markdown": "hf-card", ".csv": "codecarbon-csv"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``wattwise export``."""
    parser.add_argument(
        "--format", choices=FORMATS,
        help="hf-card (co2_eq_emissions, grams), codecarbon-csv (kg!), mlflow (default: from "
        "-o's extension: .md hf-card, .csv codecarbon-csv)",
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
    cc = parser.add_argument_group("codecarbon-csv")
    cc.add_argument("--project-name", help="project_name column (default: the project folder)")
    ml = parser.add_argument_group("mlflow")
    ml.add_argument("--mlflow-uri", metavar="URI", help="tracking URI (default: "
                    "$MLFLOW_TRACKING_URI, else sqlite:///<project>/.wattwise/mlflow.db)")
    ml.add_argument("--experiment", default="wattwise", help="MLflow experiment name")


def _format(args: argparse.Namespace) -> str:
    """The export format: ``--format``, else from ``-o``'s extension (or ``--into``)."""
    from wattwise.cli._main import UsageError

    given = args.format
    if given is None and args.into:
        given = "hf-card"
    chosen = _args.output_format(args.output, given, BY_EXTENSION, default=None, choices=FORMATS)
    if args.into and chosen != "hf-card":
        msg = f"--into merges a model card: it needs --format hf-card, not --format {chosen}"
        raise UsageError(msg)
    if chosen == "mlflow" and args.output not in (None, "-"):
        msg = (
            "--format mlflow logs to a tracking server and writes no file: drop -o, and "
            "choose the server with --mlflow-uri"
        )
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


def main(args: argparse.Namespace) -> int:
    """Export."""
    from wattwise import report as rp
    from wattwise.store import open_store

    chosen_format = _format(args)
    store = open_store(args.store)
    try:
        if chosen_format == "hf-card":
            built = rp.build_report(store, **selection(args))
            card = rp.hf_card(built, training_type=args.training_type,
                              include_embodied=args.include_embodied)  # fmt: skip
            if args.into:
                path = rp.update_model_card(args.into, card)
                print(fmt.safe(f"Updated {path.resolve()}: co2_eq_emissions = "
                               f"{card.co2_eq_emissions['emissions']:g} g"))  # fmt: skip
            else:
                _write(card.to_markdown(), args.output)
            return 0
        chosen = rp.select_runs(store, **selection(args))
        if chosen_format == "codecarbon-csv":
            name = args.project_name or store.path.resolve().parent.parent.name
            _write(rp.render_codecarbon_csv(chosen.counted, project_name=name), args.output)
            return 0
        uri = args.mlflow_uri or rp.default_tracking_uri(store)
        done = rp.log_to_mlflow(store, chosen.counted, tracking_uri=uri,
                                experiment_name=args.experiment)  # fmt: skip
    finally:
        store.close()
    for item in done:
        verb = "created" if item.created else "updated"
        print(fmt.safe(f"{item.wattwise_run_id[:12]} -> MLflow run {item.mlflow_run_id} "
                       f"({verb})"))  # fmt: skip
    print(fmt.safe(f"Logged {len(done)} run(s) to {uri}, experiment '{args.experiment}'."))
    return 0

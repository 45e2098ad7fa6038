"""``wattwise ledger export | import``: move a ledger between backends, merge a colleague's.

The file is versioned JSON Lines (``.gz``: compressed); see ``wattwise.store.export_ledger``
for the format. Import adds only what the ledger lacks, so it can be repeated.
"""

from __future__ import annotations

import argparse
import json
import sys

from wattwise.cli import _format as fmt

HELP = "export the ledger to a JSON Lines file, or import one (idempotent merge)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Sub-actions of ``wattwise ledger``."""
    common = argparse.ArgumentParser(add_help=False)
    # --store and --debug also after the action (as after any verb).
    common.add_argument("--store", metavar="URL", default=argparse.SUPPRESS,
                        help="ledger path or URL (default: the project's, or $WATTWISE_STORE)")
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show the traceback of an error")  # fmt: skip
    common.add_argument("--json", action="store_true", help="machine-readable summary")
    sub = parser.add_subparsers(
        dest="action", metavar="ACTION", required=True, parser_class=type(parser)
    )
    export = sub.add_parser(
        "export", parents=[common], help="write every run (metrics, samples, annotations, "
        "artifacts, cache hits) to a versioned JSON Lines file",
    )  # fmt: skip
    export.add_argument(
        "-o", "--output", metavar="FILE", default="-",
        help="file to write (.jsonl, or .jsonl.gz compressed; default '-': standard output)",
    )  # fmt: skip
    imp = sub.add_parser(
        "import", parents=[common], help="add the runs of an export that this ledger lacks "
        "(runs are matched by their global ids; importing twice adds nothing)",
    )  # fmt: skip
    imp.add_argument("file", metavar="FILE", help="an export ('-' for standard input)")


def main(args: argparse.Namespace) -> int:
    """Export or import."""
    from wattwise.store import open_store

    # An export only reads: its store refuses every write.
    store = open_store(args.store, readonly=args.action == "export")
    try:
        if args.action == "export":
            from wattwise.store import export_to_path

            summary = export_to_path(store, args.output)
            data = summary.to_dict()
            where = "standard output" if args.output == "-" else args.output
            line = (
                f"Exported {summary.runs} run(s), {summary.metrics} metric points, "
                f"{summary.samples} power samples, {summary.artifacts} artifact(s) and "
                f"{summary.reuse} cache hit(s) to {where}."
            )
        else:
            from wattwise.store import import_from_path

            result = import_from_path(store, args.file)
            data = result.to_dict()
            line = (
                f"Imported {args.file}: {result.runs_added} run(s) added, "
                f"{result.runs_updated} updated to a later state, {result.runs_unchanged} "
                f"already in the ledger; {result.metrics} metric points, {result.samples} "
                f"power samples, {result.artifacts} artifact(s), {result.reuse_added} cache "
                f"hit(s) added ({result.reuse_present} already there)."
            )
    finally:
        store.close()
    # The summary goes to stderr when the export itself is on stdout.
    stream = sys.stderr if args.action == "export" and args.output == "-" else sys.stdout
    if args.json:
        print(json.dumps(data, indent=2), file=stream)
    else:
        print(fmt.safe(line), file=stream)
    return 0

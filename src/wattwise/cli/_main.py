"""Argument parsing and the single error funnel of the ``wattwise`` command."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence
from typing import NoReturn

from wattwise import __version__
from wattwise.exceptions import InvalidParameterError, RegionError, WattwiseError

#: Verb modules under ``wattwise.cli.commands``; each has HELP, add_arguments(), main().
COMMANDS = (
    "run",
    "runs",
    "show",
    "footprint",
    "doctor",
    "tune",
    "reproduce",
    "cache",
    "report",
    "sci",
    "export",
)

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


class UsageError(WattwiseError):
    """Bad command-line usage (exit code 2)."""


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line, raised instead of exiting."""

    def error(self, message: str) -> NoReturn:
        msg = f"{self.prog}: {message} (see '{self.prog} --help')"
        raise UsageError(msg)


def build_parser() -> argparse.ArgumentParser:
    """The full parser, one sub-parser per verb."""
    common = _Parser(add_help=False)
    common.add_argument(
        "--store", metavar="PATH", help="ledger file (default: .wattwise/ledger.db at the "
        "project root, or $WATTWISE_STORE)",
    )  # fmt: skip
    common.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    parser = _Parser(
        prog="wattwise",
        description="Measure, cut and prove the energy and carbon cost of ML work.",
    )
    parser.add_argument("--version", action="version", version=f"wattwise {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in COMMANDS:
        module = importlib.import_module(f"wattwise.cli.commands.{name}")
        verb = sub.add_parser(name, help=module.HELP, description=module.HELP, parents=[common])
        module.add_arguments(verb)
        verb.set_defaults(handler=module.main)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``wattwise`` command; returns the exit code."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args_list
    logging.basicConfig(level=logging.DEBUG if debug else logging.WARNING, format="%(message)s")
    try:
        parser = build_parser()
        args = parser.parse_args(args_list)
        if getattr(args, "handler", None) is None:
            parser.print_help(sys.stderr)
            return EXIT_USAGE
        code: int = args.handler(args)
        return code
    except UsageError as err:
        print(f"wattwise: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except (InvalidParameterError, RegionError) as err:
        if debug:
            raise
        print(f"wattwise: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except WattwiseError as err:
        if debug:
            raise
        print(f"wattwise: error: {err}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        print("wattwise: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return EXIT_FAILURE

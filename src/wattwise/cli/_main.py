"""Argument parsing and the single error funnel of the ``wattwise`` command.

Exit codes: 0 success, 1 a runtime failure (one line on stderr), 2 a usage or value error
(one line on stderr), 130 interrupted; ``wattwise run`` and ``reproduce`` return the command's
own code. A traceback is printed only with ``--debug`` (before or after the verb).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import os
import sys
import traceback
from collections.abc import Sequence
from typing import NoReturn

from wattwise import __version__
from wattwise.cli._format import cli_spelling, safe
from wattwise.exceptions import ConfigError, InvalidParameterError, RegionError, WattwiseError

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
    "ledger",
    "job",
)

#: Verbs that start work depending on the settings: a bad config file or variable stops
#: them before anything starts, with one line and exit 2 (``doctor`` reads them first
#: itself; read-only verbs do not need them).
SETTINGS_VERBS = frozenset({"run", "tune", "reproduce"})

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


class UsageError(WattwiseError):
    """Bad command-line usage (exit code 2)."""


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line, raised instead of exiting."""

    def error(self, message: str) -> NoReturn:
        msg = f"{message} (see '{self.prog} --help')"
        raise UsageError(msg)


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The full parser, one sub-parser per verb; with ``only``, that verb's sub-parser alone.

    Each verb's module is imported to build its sub-parser, and all of them together cost
    ``wattwise run`` more than a tenth of a second; :func:`_verb_of` says when one is enough.
    """
    common = _Parser(add_help=False)
    parser = _Parser(
        prog="wattwise",
        description="Measure, cut and prove the energy and carbon cost of ML work.",
    )
    parser.add_argument("--version", action="version", version=f"wattwise {__version__}")
    # --store and --debug work before or after the verb; after it, they are SUPPRESSed so
    # that the verb's defaults do not overwrite what was given before it.
    for target, default in ((parser, None), (common, argparse.SUPPRESS)):
        target.add_argument(
            "--store", metavar="PATH", default=default, help="ledger file (default: "
            ".wattwise/ledger.db at the project root, or $WATTWISE_STORE)",
        )  # fmt: skip
        target.add_argument(
            "--debug", action="store_true", default=default or False,
            help="show the traceback of an error",
        )  # fmt: skip
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in COMMANDS if only is None else (only,):
        module = importlib.import_module(f"wattwise.cli.commands.{name}")
        verb = sub.add_parser(name, help=module.HELP, description=module.HELP, parents=[common])
        module.add_arguments(verb)
        verb.set_defaults(handler=module.main)
    return parser


def _verb_of(args_list: Sequence[str]) -> str | None:
    """The verb when only wattwise's value-free forms precede it (``--debug``, ``--store
    PATH``, ``--store=PATH``), else None: anything else (``--help``, ``--version``, an
    abbreviated option, an unknown verb) is left to the full parser, which lists every verb.
    """
    tokens = iter(args_list)
    for token in tokens:
        if token == "--debug" or token.startswith("--store="):
            continue
        if token == "--store":
            next(tokens, None)
            continue
        return token if token in COMMANDS else None
    return None


def _parse(args_list: Sequence[str]) -> tuple[argparse.Namespace, list[str]]:
    """``parse_known_args`` with the parser of the one verb asked for when that is known, so
    that a run imports no other verb's module; the full parser for anything else, for every
    error (its message lists what the full parser would) and when the two could disagree.
    """
    verb = _verb_of(args_list)
    if verb is not None:
        try:
            args, extra = build_parser(only=verb).parse_known_args(args_list)
        except UsageError:
            pass  # the full parser below says it, exactly as without this shortcut
        else:
            if getattr(args, "command", None) == verb:
                return args, extra
    return build_parser().parse_known_args(args_list)


def _debug_requested(args_list: Sequence[str]) -> bool:
    """``--debug`` among wattwise's own options (not after ``--``, which starts a command)."""
    for token in args_list:
        if token == "--":
            return False
        if token == "--debug":
            return True
    return False


def _say(message: object) -> None:
    """One line on stderr: ``wattwise: error: MESSAGE``, control characters made visible."""
    print(f"wattwise: error: {safe(cli_spelling(str(message)))}", file=sys.stderr)


def _check_settings() -> None:
    """Read the settings once, so that a bad config file stops the verb with one line."""
    from wattwise._config import load_settings

    load_settings()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``wattwise`` command; returns the exit code."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    debug = _debug_requested(args_list)
    try:
        args, extra = _parse(args_list)
        if extra:
            verb = f"wattwise {args.command}" if getattr(args, "command", None) else "wattwise"
            msg = f"unrecognized arguments: {' '.join(extra)} (see '{verb} --help')"
            raise UsageError(msg)
        debug = bool(getattr(args, "debug", debug))
        logging.basicConfig(
            level=logging.DEBUG if debug else logging.WARNING, format="%(message)s"
        )
        if getattr(args, "handler", None) is None:
            msg = (
                f"give a command: {', '.join(COMMANDS)} (see 'wattwise --help', or "
                "'wattwise COMMAND --help')"
            )
            raise UsageError(msg)
        if args.command in SETTINGS_VERBS:
            _check_settings()
        code: int = args.handler(args)
        sys.stdout.flush()  # a closed pipe fails here, inside the funnel, not at exit
        return code
    except SystemExit as done:  # --help and --version; sys.exit() in a user's objective
        if done.code is None or isinstance(done.code, int):
            return done.code or EXIT_OK
        _say(done.code)  # sys.exit("message"): Python prints it and exits 1
        return EXIT_FAILURE
    except UsageError as err:
        _say(err)
        return EXIT_USAGE
    except (InvalidParameterError, ConfigError, RegionError) as err:
        _report(err, debug)
        return EXIT_USAGE
    except WattwiseError as err:
        _report(err, debug)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        print("wattwise: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (``wattwise runs | head``): stop quietly, and keep Python from
        # complaining again when it flushes stdout at exit.
        with contextlib.suppress(OSError, ValueError):  # ValueError: stdout has no file
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            os.close(devnull)
        return EXIT_FAILURE
    except OSError as err:
        _report(err, debug)
        return EXIT_FAILURE
    except Exception as err:  # a bug: still one line, and the way to learn more
        if debug:
            traceback.print_exc()
        how = "the traceback is above" if debug else "run with --debug for the traceback"
        _say(f"unexpected {type(err).__name__}: {err} (a bug in wattwise; {how} and report it)")
        return EXIT_FAILURE


def _report(err: BaseException, debug: bool) -> None:
    """The error's one line, after its traceback when ``--debug`` was given."""
    if debug:
        traceback.print_exc()
    if isinstance(err, OSError) and err.strerror:
        where = f"{err.filename}: " if err.filename is not None else ""
        _say(f"{where}{err.strerror}")
        return
    _say(err)

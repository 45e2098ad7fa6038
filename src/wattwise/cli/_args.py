"""Argument types of the ``wattwise`` command: a bad value is a one-line usage error (exit 2).

Each function is an ``argparse`` ``type=``: it returns the parsed value or raises
``argparse.ArgumentTypeError`` with the value, the rule and the way out, which the parser
turns into ``wattwise: error: argument --x: ...``.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

#: Shortest id prefix the CLI accepts, the ledger's and the cache's own rule
#: (``BaseRunStore.get_run``, ``ArtifactCache.info``): four hex digits of a random id.
MIN_PREFIX = 4


def run_ref(text: str) -> str:
    """A run id or a prefix of one, at least :data:`MIN_PREFIX` characters."""
    if len(text.strip()) < MIN_PREFIX:
        msg = (
            f"run id {text!r} is too short: run ids need at least {MIN_PREFIX} "
            "characters; copy one from 'wattwise runs'"
        )
        raise argparse.ArgumentTypeError(msg)
    return text.strip()


def cache_key(text: str) -> str:
    """A cache entry key or a prefix of one, at least :data:`MIN_PREFIX` characters."""
    if len(text.strip()) < MIN_PREFIX:
        msg = (
            f"cache key {text!r} is too short: keys need at least {MIN_PREFIX} "
            "characters; copy one from 'wattwise cache ls'"
        )
        raise argparse.ArgumentTypeError(msg)
    return text.strip()


#: The largest count a ledger query takes (SQLite and PostgreSQL integers are 64-bit).
MAX_COUNT = 2**63 - 1


def positive_int(text: str) -> int:
    """An integer from 1 to :data:`MAX_COUNT` (``--limit``)."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= MAX_COUNT:
        msg = f"got {text!r}, but it must be a whole number >= 1 (at most {MAX_COUNT})"
        raise argparse.ArgumentTypeError(msg)
    return value


def pue(text: str) -> float:
    """A power usage effectiveness: a finite number >= 1.0.

    PUE is total facility energy over IT equipment energy (The Green Grid, White Paper #49,
    "PUE: A Comprehensive Examination of the Metric", 2012; ISO/IEC 30134-2:2016), so it is
    1.0 for a facility that spends nothing beyond its IT load and more for any real one.
    """
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 1.0:
        msg = (
            f"got {text!r}, but PUE must be a finite number >= 1.0 (facility energy / IT "
            "energy, The Green Grid); e.g. --pue 1.1, or leave it out for the location's value"
        )
        raise argparse.ArgumentTypeError(msg)
    return value


def meter_ids(text: str) -> str:
    """Comma-separated meter ids, none of them empty: ``cpu-rapl,gpu-nvml`` (spaces dropped)."""
    ids = [part.strip() for part in text.split(",")]
    if any(not part for part in ids):
        msg = (
            f"got {text!r}: give comma-separated meter ids with none empty, e.g. "
            "cpu-rapl,gpu-nvml ('wattwise doctor' lists them)"
        )
        raise argparse.ArgumentTypeError(msg)
    return ",".join(ids)


def plain_text(text: str) -> str:
    """Text without control characters, for names shown on a live terminal line.

    The tuning progress line (``wattwise.tune``, below the CLI) shows the study name as
    given; refusing control characters here keeps escape sequences off that line.
    """
    from wattwise.cli._format import safe

    if safe(text) != text:
        msg = (
            f"got {text!r}: this name is shown on a live status line, so it may not hold "
            "control characters (escapes, newlines, tabs); choose plain text"
        )
        raise argparse.ArgumentTypeError(msg)
    return text


def output_format(
    output: str | None,
    given: str | None,
    by_extension: Mapping[str, str],
    *,
    default: str | None,
    choices: Sequence[str] = (),
) -> str:
    """The format to write: ``--format`` if given, else the one ``-o``'s extension names.

    Args:
        output: The ``-o`` value; None or ``-`` for standard output.
        given: The ``--format`` value, or None.
        by_extension: Lower-case extensions (``".md"``) to formats.
        default: The format when neither says one, or None to require one.
        choices: Every format, for the messages (default: those of ``by_extension``).

    Raises:
        UsageError: ``-o``'s extension names another format than ``--format`` (``-o r.md
            --format html``); an extension that names no format without ``--format``; no
            format at all where ``default`` is None.
    """
    from wattwise.cli._main import UsageError

    to_file = output is not None and output != "-"
    suffix = Path(output).suffix.lower() if to_file and output else ""
    implied = by_extension.get(suffix)
    formats = list(choices) or sorted(set(by_extension.values()))
    if given is not None:
        if implied is not None and implied != given:
            msg = (
                f"-o {output!r} is a {suffix} file, which means --format {implied}, but "
                f"--format {given} was given: drop --format, or give the file the extension "
                "of the format you want"
            )
            raise UsageError(msg)
        return given
    if implied is not None:
        return implied
    extensions = ", ".join(f"{ext} ({fmt})" for ext, fmt in by_extension.items())
    if to_file:
        msg = (
            f"cannot tell the format of -o {output!r} from its extension {suffix or '(none)'}: "
            f"use one of {extensions}, or say it with --format {{{','.join(formats)}}}"
        )
        raise UsageError(msg)
    if default is None:
        msg = f"give --format {{{','.join(formats)}}}, or -o with one of {extensions}"
        raise UsageError(msg)
    return default

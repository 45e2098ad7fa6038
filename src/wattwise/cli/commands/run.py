"""``wattwise run -- CMD``: run a command and record its energy and carbon.

The command's standard output and error pass through untouched; wattwise writes only to
stderr, after the command's own output: the summary, or with ``--json`` the same summary
as one JSON object on one line (stdout stays the command's, so ``> out.txt`` keeps only
what it printed). ``--json-file FILE`` writes that object to FILE instead (or as well).
The run is named after the script or module it runs (``train.py``, ``pkg.train``);
``--name`` wins.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from wattwise.cli import _args, _live
from wattwise.cli import _format as fmt

HELP = "run a command, measure its energy and carbon, record it in the ledger"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``wattwise run``."""
    parser.add_argument(
        "--name", help="run name (default: the script or module run: train.py, pkg.train)"
    )
    parser.add_argument("--region", help="grid region: FR, US-CAL-CISO, gcp:europe-west1 ...")
    parser.add_argument("--tag", action="append", default=[], help="tag the run (repeatable)")
    parser.add_argument(
        "--meters", type=_args.meter_ids,
        help="comma-separated meter ids (default: best available; see 'wattwise doctor')",
    )  # fmt: skip
    parser.add_argument(
        "--pue", type=_args.pue, help="power usage effectiveness to apply (a number >= 1.0)"
    )
    parser.add_argument(
        "--no-diff", dest="no_diff", action="store_true",
        help="do not store the uncommitted git diff with the run (config: diff = false)",
    )  # fmt: skip
    parser.add_argument(
        "-q", "--quiet", action="store_true",
        help="no summary and no live status line on stderr (live line alone: WATTWISE_LIVE=0)",
    )  # fmt: skip
    parser.add_argument(
        "--total-steps", dest="total_steps", type=_args.positive_int, default=None,
        help="steps the command will log (e.g. epochs): the live line predicts its total "
        "energy (env: WATTWISE_TOTAL_STEPS)",
    )  # fmt: skip
    parser.add_argument(
        "--json", action="store_true",
        help="the summary as one JSON object on stderr, in place of the text and of the "
        "warning lines (its 'warnings' list has them); stdout stays the command's",
    )  # fmt: skip
    parser.add_argument(
        "--json-file", dest="json_file", metavar="FILE",
        help="also write the summary as a JSON object to FILE (replaced if it exists)",
    )  # fmt: skip
    parser.add_argument("cmd", nargs=argparse.REMAINDER, help="-- COMMAND [ARGS...]")


def summary(result: object, record: dict[str, object], store_path: str) -> str:
    """The one-paragraph summary printed after a run."""
    from wattwise.tracking import RunResult

    assert isinstance(result, RunResult)
    parts = ", ".join(fmt.component_line(c) for c in result.components) or "no meter"
    intensity = record.get("intensity", {})
    pue = record.get("pue", {})
    assert isinstance(intensity, dict) and isinstance(pue, dict)
    code = f", exit code {result.exit_code}" if result.exit_code is not None else ""
    lines = [
        f"wattwise: run {result.id[:8]} '{fmt.safe(result.name)}' {result.status} in "
        f"{fmt.duration(result.duration_s)}{code}.",
        f"  Energy {fmt.with_band(result.energy_j, result.energy_band_j)} attributed to the "
        f"process tree ({parts}); whole machine {fmt.energy(result.machine_energy_j)}.",
        f"  Carbon {fmt.with_band(result.co2e_g, result.co2e_band_g, fmt.carbon)} at "
        f"{result.intensity_g_per_kwh:.0f} gCO2e/kWh ({fmt.safe(intensity.get('zone'))}, "
        f"{intensity.get('dataset')}, {intensity.get('scope')}), PUE {result.pue:g} "
        f"({pue.get('applies_to')}).",
        f"  Details: wattwise show {result.id[:8]}   (ledger: {fmt.safe(store_path)})",
    ]
    return "\n".join(lines)


def summary_json(run: Any, ledger: str) -> dict[str, Any]:
    """The run summary as JSON: ``RunResult.to_dict()``'s fields (``show RUN --json``'s
    names), the command, where the figures come from, and where the run was recorded."""
    from wattwise.tracking import Run

    assert isinstance(run, Run)
    record = run.record
    return {
        **run.result.to_dict(),
        "command": record.get("command", {}).get("argv"),
        "intensity": record.get("intensity"),
        "pue_source": record.get("pue", {}).get("source"),
        "warnings": list(run.warnings),
        "ledger": ledger,
        "recorded_in": run.recorded_in,
        "spooled_to": str(run.spooled_to) if run.spooled_to is not None else None,
    }


def _json_target(value: str | None) -> Path | None:
    """``--json-file``'s path, checked before the command runs (a typo costs no run)."""
    from wattwise.cli._main import UsageError

    if value is None:
        return None
    path = Path(value).expanduser()
    if path.is_dir():
        msg = f"wattwise run: --json-file {value!r} is a folder; give a file name in it"
        raise UsageError(msg)
    if not path.parent.is_dir():
        msg = (f"wattwise run: --json-file {value!r}: folder {str(path.parent)!r} does not "
               "exist; create it or write the file elsewhere")  # fmt: skip
        raise UsageError(msg)
    return path


def _report(run: Any, args: argparse.Namespace, json_path: Path | None) -> None:
    """The summary on stderr (text or ``--json``) and in ``--json-file``. Never raises:
    the exit code is the command's whatever happens here."""
    ledger = fmt.ledger(run.store)
    if args.json or json_path is not None:
        data = summary_json(run, ledger)
        text = json.dumps(data, default=str)
        if json_path is not None:
            try:
                partial = json_path.with_name(f".{json_path.name}.{os.getpid()}.tmp")
                partial.write_text(text + "\n", encoding="utf-8")
                partial.replace(json_path)
            except OSError as err:
                print(fmt.safe(f"wattwise: warning: the JSON summary was not written to "
                               f"{json_path}: {err}"), file=sys.stderr)  # fmt: skip
        if args.json:
            print(text, file=sys.stderr)
            return
    if args.quiet:
        return
    if run.recorded_in == "nowhere":
        ledger = f"{ledger}; NOT recorded: neither the ledger nor the spool could be written"
    elif run.spooled_to is not None:
        ledger = f"{ledger}; this run is spooled in {run.spooled_to} until merged"
    print(summary(run.result, run.record, ledger), file=sys.stderr)


def main(args: argparse.Namespace) -> int:
    """Run the command; return its exit code, whatever the state of the ledger.

    The ledger is opened by the run itself, lazily and with a short lock timeout, so a
    missing, locked, damaged or read-only ledger never delays or fails the command: its
    records then go to the spool, with one warning per kind of fault on stderr.
    """
    from wattwise.cli._main import UsageError
    from wattwise.exceptions import CommandNotStartedError
    from wattwise.tracking import Run, run_command

    cmd = list(args.cmd)
    if cmd and cmd[0] == "--":
        cmd = cmd[1:]
    if not cmd:
        msg = "wattwise run: no command given; usage: wattwise run [OPTIONS] -- COMMAND [ARGS...]"
        raise UsageError(msg)
    try:
        total_steps = args.total_steps or _live.total_steps_from_env()
    except ValueError as err:
        msg = f"wattwise run: {err}"
        raise UsageError(msg) from None
    json_path = _json_target(args.json_file)
    meters = args.meters.split(",") if args.meters else None

    def warn(text: str) -> None:
        # with --json, stderr after the command's own output is the JSON object alone: the
        # warnings are in its "warnings" list
        if not args.json:
            print(f"wattwise: warning: {fmt.safe(text)}", file=sys.stderr)

    run = Run(
        args.name, command=cmd, kind="command", region=args.region, tags=args.tag,
        meters=meters, pue=args.pue, store=args.store, emit_warnings=False,
        diff=False if args.no_diff else None, on_warning=warn,
    )  # fmt: skip
    live = _live.start_for(run, quiet=args.quiet, total_steps=total_steps)
    try:
        code, _ = run_command(cmd, run=run)
    except CommandNotStartedError as err:
        print(f"wattwise: error: {fmt.safe(err)}", file=sys.stderr)
        if args.json or json_path is not None:  # the run is recorded failed: say so there too
            _report(run, argparse.Namespace(**{**vars(args), "quiet": True}), json_path)
        return err.exit_code
    finally:
        if live is not None:
            live.stop()
    _report(run, args, json_path)
    return code

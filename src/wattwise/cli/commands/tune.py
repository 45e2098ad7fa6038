"""``wattwise tune FILE.py[:NAME]``: an Optuna search, every trial metered, within budgets."""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import sys
import threading
from collections.abc import Iterator
from typing import Any

from wattwise.cli import _args
from wattwise.cli import _format as fmt

HELP = "search hyperparameters (Optuna) within an energy, carbon or time budget"

_PRUNERS = ("halving", "hyperband", "median", "none")
_STOPPED = {
    "n_trials": "every trial ran",
    "energy_budget": "energy budget spent",
    "carbon_budget": "carbon budget spent",
    "timeout": "time budget spent",
    "search_space_exhausted": "search space exhausted",
    "interrupted": "interrupted (Ctrl-C)",
    "terminated": "terminated (SIGTERM)",
    "error": "a trial raised an error",
}
_SAMPLERS = ("random", "tpe")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``wattwise tune``."""
    parser.epilog = (
        "Ctrl-C or SIGTERM stops the study: no further trial starts, the running trials' "
        "runs end failed with their energy, the summary so far is printed, and the exit "
        "code is 130 (SIGINT) or 143 (SIGTERM); --resume continues a study kept in "
        "--storage. FILE.py sees sys.argv == [FILE.py]."
    )
    parser.add_argument(
        "objective", metavar="FILE.py[:NAME]",
        help="Python file defining objective(trial) -> float (NAME defaults to 'objective'); "
        "a dict SPACE in the file is used as the search space. While the file is imported "
        "and its objective runs, sys.argv is [FILE.py], as 'python FILE.py' would see it",
    )  # fmt: skip
    parser.add_argument("--n-trials", type=int, help="most trials to start")
    parser.add_argument("--budget-kwh", type=float, help="energy budget of the study, in kWh")
    parser.add_argument("--budget-co2e-g", type=float, help="carbon budget, in gCO2e")
    parser.add_argument("--timeout-s", type=float, help="wall-time budget, in seconds")
    parser.add_argument(
        "--executor", choices=("inline", "processes", "ray"), default="inline",
        help="where trials run (default: inline, one at a time in this process)",
    )  # fmt: skip
    parser.add_argument("--n-workers", type=int, help="trials at once (processes, ray)")
    parser.add_argument(
        "--direction", choices=("minimize", "maximize"), default="minimize",
        help="optimise the objective down or up (default: minimize)",
    )  # fmt: skip
    parser.add_argument("--seed", type=int, help="seed of the sampler")
    parser.add_argument(
        "--sampler", choices=_SAMPLERS,
        help="default: tpe (TPE, its first 10 trials random; pruned by successive halving); "
        "random: random configurations",
    )  # fmt: skip
    parser.add_argument(
        "--pruner", choices=_PRUNERS,
        help="successive halving, hyperband, median, or none (default: halving, with energy "
        "as the fidelity)",
    )  # fmt: skip
    parser.add_argument(
        "--energy-fidelity", action=argparse.BooleanOptionalAction, default=None,
        help="pruner steps are the trial's cumulative energy instead of its report steps "
        "(default: on with the default pruner, off with --pruner)",
    )  # fmt: skip
    parser.add_argument("--energy-step-j", type=float, help="joules per pruner step")
    parser.add_argument(
        "--study-name", type=_args.plain_text,
        help="name of the study, plain text (default: tune-NAME)",
    )  # fmt: skip
    parser.add_argument(
        "--storage", metavar="URL",
        help="keep the Optuna study in this storage (sqlite:///study.db, postgresql://...) "
        "so that --resume can continue it",
    )  # fmt: skip
    parser.add_argument(
        "--resume", action="store_true",
        help="continue the study of this --study-name in --storage (created if absent): "
        "--n-trials counts its earlier trials, budgets their energy",
    )  # fmt: skip
    parser.add_argument("--region", help="grid region of the runs: FR, US-CAL-CISO, ...")
    parser.add_argument("--tag", action="append", default=[], help="tag every run (repeatable)")
    parser.add_argument("--no-progress", action="store_true", help="no live status line")
    parser.add_argument("--json", action="store_true", help="machine-readable output")


def _sampler_and_pruner(args: argparse.Namespace) -> tuple[Any, Any]:
    import optuna

    from wattwise.tuning import default_pruner

    sampler: Any = None  # tpe: tune()'s default sampler, seeded by --seed
    if args.sampler == "random":
        sampler = optuna.samplers.RandomSampler(seed=args.seed)
    pruner: Any = None  # tune()'s default: successive halving, energy as fidelity
    if args.pruner == "halving":
        pruner = default_pruner()  # tune()'s, given: the fidelity follows --energy-fidelity
    elif args.pruner == "hyperband":
        pruner = optuna.pruners.HyperbandPruner(min_resource=1, reduction_factor=3)
    elif args.pruner == "median":
        pruner = optuna.pruners.MedianPruner(n_startup_trials=5)
    elif args.pruner == "none":
        pruner = optuna.pruners.NopPruner()
    return sampler, pruner


def summary(result: Any) -> str:
    """The human summary of a study."""
    data = result.summary
    counts = data["n_trials"]
    spent, budget = data["spent"], data["budget"]
    limits = []
    if budget["energy_j"] is not None:
        limits.append(f"energy {fmt.energy(budget['energy_j'])}")
    if budget["co2e_g"] is not None:
        limits.append(f"carbon {fmt.carbon(budget['co2e_g'])}")
    if budget["timeout_s"] is not None:
        limits.append(f"time {fmt.duration(budget['timeout_s'])}")
    if budget["n_trials"] is not None:
        limits.append(f"{budget['n_trials']} trials")
    lines = [
        f"Study '{data['study_name']}' ({data['study_id'][:8]}) stopped: "
        f"{_STOPPED.get(data['stop_reason'], data['stop_reason'])}. {counts['total']} trials: "
        f"{counts['complete']} complete, {counts['pruned']} pruned "
        f"({counts['pruned_by_budget']} by the budget), {counts['fail']} failed.",
        f"  Spent {fmt.energy(spent['energy_j'])} (trials {fmt.energy(spent['trials_energy_j'])}, "
        f"driver {fmt.energy(spent['driver_energy_j'])}), {fmt.carbon(spent['co2e_g'])}, "
        f"{fmt.duration(spent['duration_s'])}; budget: {', '.join(limits)}.",
    ]
    if data.get("summary_source"):  # the ledger did not answer: the driver's own figures
        lines.append(f"  Figures: {fmt.safe(data['summary_source'])}; the runs reach the "
                     "ledger from the spool (wattwise doctor --repair).")  # fmt: skip
    over = data["overshoot"]
    if over["energy_j"] or over["co2e_g"] or over["duration_s"]:
        parts = []
        if over["energy_j"]:
            parts.append(fmt.energy(over["energy_j"]))
        if over["co2e_g"]:
            parts.append(fmt.carbon(over["co2e_g"]))
        if over["duration_s"]:
            parts.append(fmt.duration(over["duration_s"]))
        lines.append(
            f"  Overshoot {', '.join(parts)} (bound: one report interval of each of the "
            f"{over['running_trials_at_stop']} running trials, ≤ "
            f"{fmt.energy(over['bound_energy_j'])})."
        )
    for item in over.get("would_overshoot") or []:
        lines.append(f"  Trial #{item['number']} stopped: {fmt.safe(item['reason'])}.")
    if over.get("not_started"):
        lines.append(f"  No further trial: {fmt.safe(over['not_started'])}.")
    best = data["best"]
    if best is not None:
        params = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                           for k, v in best["params"].items())  # fmt: skip
        lines.append(
            f"  Best: trial #{best['number']} value {best['value']:.6g} ({params}), "
            f"{fmt.energy(best['energy_j'])}; run {best['run_id'][:8]}."
        )
    lines.append(
        f"  Pruning avoided about {fmt.energy(data['avoided_energy_j'])} and "
        f"{fmt.carbon(data['avoided_co2e_g'])} (estimated) against running every started "
        "trial to its end."
    )
    rows = [
        [f"#{p['number']}", p["state"], f"{p['value']:.6g}", fmt.energy(p["energy_j"]),
         p["run_id"][:8]]
        for p in data["pareto"]
    ]  # fmt: skip
    if rows:
        source = "the driver's figures" if data.get("summary_source") else "from the ledger"
        lines.append(f"  Pareto front, value against energy ({source}):")
        table = fmt.table(["TRIAL", "STATE", "VALUE", "ENERGY", "RUN"], rows)
        lines.extend("    " + line for line in table.splitlines())
    nodes = data.get("nodes") or {}
    if nodes:
        node_rows = [
            [node[:12], str(n["trials"]), fmt.energy(n["energy_j"]), fmt.carbon(n["co2e_g"])]
            for node, n in nodes.items()
        ]  # fmt: skip
        lines.append("  Trials per Ray node (from the ledger):")
        table = fmt.table(["NODE", "TRIALS", "ENERGY", "CARBON"], node_rows)
        lines.extend("    " + line for line in table.splitlines())
    kept = data.get("optuna")
    if isinstance(kept, dict):
        before = kept.get("trials_before") or 0
        orphans = kept.get("orphans_failed") or []
        resumed = (
            f"resumed after {before} earlier trials"
            + (f" ({len(orphans)} left running by a killed session, now failed)" if orphans
               else "")
            if before else "a new study"
        )  # fmt: skip
        lines.append(
            f"  Study kept in {kept.get('storage')}: session {kept.get('session')}, {resumed}; "
            f"{kept.get('trials_in_study')} trials in the study now."
        )
    lines.append(f"  Details: wattwise show {data['study_id'][:8]}")
    return fmt.lines(lines)


def _tune(*args: Any, **kwargs: Any) -> Any:
    """``tune()``, with an objective's own exception turned into a one-line error."""
    from wattwise.exceptions import SearchError, WattwiseError
    from wattwise.tuning import tune

    try:
        return tune(*args, **kwargs)
    except WattwiseError:
        raise
    except Exception as err:
        msg = (
            f"A trial raised {type(err).__name__}: {err}. The study stopped; its trials are "
            "in the ledger ('wattwise runs'). Fix the objective, or rerun with --debug for "
            "the traceback."
        )
        raise SearchError(msg) from err


@contextlib.contextmanager
def _file_argv(path: str) -> Iterator[None]:
    """``sys.argv`` as ``python FILE.py`` sees it while the file runs, then wattwise's again.

    A file with top-level argparse would otherwise parse wattwise's own options. Worker
    processes (spawned while it is set) start with the same ``sys.argv``.
    """
    saved = sys.argv
    sys.argv = [path]
    try:
        yield
    finally:
        sys.argv = saved


#: Exit codes of a study stopped by a signal: 128 + the signal's number, as a shell reports.
_SIGNAL_EXIT = {"interrupted": 128 + signal.SIGINT, "terminated": 128 + signal.SIGTERM}


@contextlib.contextmanager
def _sigterm_stops_the_study() -> Iterator[None]:
    """SIGTERM (``timeout``, a SLURM time limit) stops the study as Ctrl-C does: raised as
    ``wattwise.tuning.Terminated`` in this (main) thread, then the default again."""
    from wattwise.tuning import Terminated

    def stop(signum: int, _frame: Any) -> None:
        signal.signal(signum, signal.SIG_DFL)  # a second SIGTERM ends the process
        msg = f"stopped by {signal.Signals(signum).name}"
        raise Terminated(msg)

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(args: argparse.Namespace) -> int:
    """Run the study and print its summary (also when Ctrl-C or SIGTERM stopped it)."""
    from wattwise.tuning import Terminated

    try:
        with _sigterm_stops_the_study():
            return _main(args)
    except Terminated:  # before the study started, or while it was summed up
        print("wattwise: terminated", file=sys.stderr)
        return _SIGNAL_EXIT["terminated"]


def _main(args: argparse.Namespace) -> int:
    from wattwise.store import get_store
    from wattwise.tuning import StudyInterrupted, load_module

    path, _, name = args.objective.rpartition(":")
    if not path or not name.isidentifier():
        path, name = args.objective, "objective"
    with _file_argv(path):
        module = load_module(path)
    space = getattr(module, "SPACE", None)
    sampler, pruner = _sampler_and_pruner(args)
    run_options: dict[str, Any] = {"emit_warnings": False}
    if args.region:
        run_options["region"] = args.region
    # A bad URL stops here; tune() opens the ledger itself, lazily, and never waits on it.
    get_store(args.store, defer=True)
    # with --json, stdout is the JSON alone: what the objective prints goes to stderr
    out = contextlib.redirect_stdout(sys.stderr) if args.json else contextlib.nullcontext()
    code = 0
    try:
        with out, _file_argv(path):
            result = _tune(
                f"{path}:{name}", space, sampler=sampler, pruner=pruner, seed=args.seed,
                n_trials=args.n_trials, budget_kwh=args.budget_kwh,
                budget_co2e_g=args.budget_co2e_g, timeout_s=args.timeout_s,
                executor=args.executor, n_workers=args.n_workers, direction=args.direction,
                energy_fidelity=args.energy_fidelity, energy_step_j=args.energy_step_j,
                study_name=args.study_name, store=args.store, tags=args.tag,
                progress=False if args.no_progress or args.json else None,
                run_options=run_options, storage=args.storage, resume=args.resume,
            )  # fmt: skip
    except StudyInterrupted as stopped:  # every run has ended: the study so far
        result = stopped.result
        code = _SIGNAL_EXIT.get(result.stop_reason, _SIGNAL_EXIT["interrupted"])
    if args.json:
        print(json.dumps(result.to_dict(), indent=2, default=str))
    else:
        print(summary(result))
    if code:
        print(f"wattwise: {result.stop_reason}", file=sys.stderr)
    return code

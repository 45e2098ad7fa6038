"""What any method drawing the same configurations could at best save: a bound from a run.

::

    .venv/bin/python -m benchmarks.tune.bound --from FILE.json [--from MORE.json]
        [--n-trials N] [--json OUT.json]

Reads the trials a benchmark run recorded (``python -m benchmarks.tune --json FILE``) and,
per (workload, seed) pair where random search reached the target:

* **oracle (random)**: random search's energy to target over the energy of *one* full
  training of the cheapest configuration random search saw that reached the target. A
  method drawing the same configurations spends at least that one training (it must train
  a configuration at the target to the end to know it is there), so no such method beats
  random search by more than this ratio;
* **oracle (TPE)**: the same for Optuna TPE without pruning and its own configurations;
* **k**: the position of random search's first trial at the target (1 = the first trial);
* **same sequence**: random search's energy to target over ``E_1 + E_j``, the full trainings
  of its first trial and of the cheapest later trial at the target. A pruned search with the
  same sampler sequence trains its first trial to the end (it has nothing to compare it
  with) and a trial at the target to the end; the trials it prunes between them cost more
  than nothing, so its ratio to random search is at most this, about ``k / 2`` when the
  trainings cost alike (1 when ``k`` is 1: random search has nothing to lose there).

The target is the benchmark's: within 0.5 accuracy points (or 2 % of the loss) of the best
value any method found in the pair. ``--n-trials N`` keeps the first N trials of each search
in the order they were sampled (what a search with N trials and the same seed draws) and
sets the targets again over those, from the Optuna-based methods only: a Ray search's trials
are recorded in the order they ended, not drawn.

Every figure comes from the file; nothing is run again.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from typing import Any

from benchmarks.tune.__main__ import quantiles, read_json
from benchmarks.tune.workloads import WORKLOADS, Workload

#: Methods that train every trial to the end (their trial energy is one full training).
FULL_TRAINING = ("random", "tpe")


def load(paths: list[str]) -> dict[tuple[str, int, str], dict[str, Any]]:
    """The searches of one or more ``--json`` files; a later file's search replaces one."""
    runs: dict[tuple[str, int, str], dict[str, Any]] = {}
    for path in paths:
        try:
            data = read_json(path)
        except (OSError, ValueError) as exc:
            msg = f"{path}: cannot read it as a benchmark JSON ({exc}); give a file written by "
            raise SystemExit(msg + "`python -m benchmarks.tune --json FILE`.") from None
        if not isinstance(data, dict) or not isinstance(data.get("runs"), list):
            msg = f"{path}: no 'runs' list; give a file written by "
            raise SystemExit(msg + "`python -m benchmarks.tune --json FILE`.")
        for r in data["runs"]:
            runs[(r["workload"], int(r["seed"]), r["method"])] = r
    return runs


def trials_of(run: dict[str, Any], n_trials: int | None) -> list[dict[str, Any]]:
    """The search's trials in the order they ended; the first ``n_trials`` drawn if given."""
    rows = list(run["trials"])
    if n_trials is not None:
        rows = sorted(rows, key=lambda t: t["number"])[:n_trials]
    return sorted(rows, key=lambda t: float(t["order"]))


def best_of(run: dict[str, Any], workload: Workload, n_trials: int | None) -> float | None:
    """The best complete trial's value (the recorded best when nothing is cut)."""
    if n_trials is None:
        value = run.get("best_value")
        return None if value is None else float(value)
    best: float | None = None
    for t in trials_of(run, n_trials):
        v = t["value"]
        ok = t["state"] == "complete" and v is not None and math.isfinite(v)
        if ok and (best is None or workload.better(v, best)):
            best = v
    return best


def at_target(trials: list[dict[str, Any]], workload: Workload, target: float) -> list[int]:
    """Indices (in ``trials``) of the complete trials at the target."""
    return [
        i for i, t in enumerate(trials)
        if t["state"] == "complete" and workload.reaches(t["value"], target)
    ]  # fmt: skip


def pair_bound(
    runs: dict[tuple[str, int, str], dict[str, Any]], name: str, seed: int,
    n_trials: int | None,
) -> dict[str, Any] | None:  # fmt: skip
    """The bound's figures for one (workload, seed) pair; None without a random search."""
    workload = WORKLOADS[name]
    if (name, seed, "random") not in runs:
        return None
    batch = {
        meth: r for (n, s, meth), r in runs.items()
        if (n, s) == (name, seed) and (n_trials is None or meth != "ray-asha")
    }  # fmt: skip
    found = [v for r in batch.values() if (v := best_of(r, workload, n_trials)) is not None]
    if not found:
        return None
    best_any = found[0]
    for v in found[1:]:
        if workload.better(v, best_any):
            best_any = v
    target = workload.threshold(best_any)
    out: dict[str, Any] = {"workload": name, "seed": seed, "target": target}
    for meth in FULL_TRAINING:
        if meth not in batch:
            continue
        trials = trials_of(batch[meth], n_trials)
        hits = at_target(trials, workload, target)
        if not hits:
            out[meth] = {"reached": False, "n_trials": len(trials)}
            continue
        k = hits[0]
        ett = sum(t["energy_j"] for t in trials[: k + 1])
        cheapest = min(trials[i]["energy_j"] for i in hits)
        fig = {
            "reached": True, "n_trials": len(trials), "k": k + 1,
            "energy_to_target_j": ett, "cheapest_at_target_j": cheapest,
            "oracle_ratio": ett / cheapest,
            "mean_trial_j": sum(t["energy_j"] for t in trials) / len(trials),
        }  # fmt: skip
        if meth == "random":
            if k == 0:
                fig["same_sequence_ratio"] = 1.0
            else:
                first = trials[0]["energy_j"]
                fig["same_sequence_ratio"] = ett / (first + cheapest)
        out[meth] = fig
    if "tpe" in batch and out["random"].get("reached"):  # cheapest at target either drew
        both = []
        for meth in FULL_TRAINING:
            if meth in batch:
                trials = trials_of(batch[meth], n_trials)
                both += [trials[i]["energy_j"] for i in at_target(trials, workload, target)]
        out["oracle_any_ratio"] = out["random"]["energy_to_target_j"] / min(both)
    defaults = batch.get("wattwise-defaults")
    if defaults is not None and n_trials is None:
        ett_d = defaults.get("energy_to_target_j")
        ett_d = math.inf if ett_d is None else float(ett_d)
        if out["random"].get("reached"):
            out["measured_defaults_ratio"] = (
                0.0 if math.isinf(ett_d) else out["random"]["energy_to_target_j"] / ett_d
            )
    return out


def fmt(values: list[float], spec: str = ".2f") -> str:
    """``median [q1, q3]`` or a dash."""
    if not values:
        return "-"
    med, lo, hi = quantiles(values)
    return f"{med:{spec}} [{lo:{spec}}, {hi:{spec}}]"


def main(argv: list[str] | None = None) -> int:
    """Print the bound per pair and its medians."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.tune.bound",
        description="What any method drawing the same configurations could at best save.",
    )
    parser.add_argument("--from", dest="from_json", metavar="FILE", action="append",
                        required=True, help="a benchmark --json file (repeat to merge)")
    parser.add_argument("--n-trials", type=int,
                        help="keep the first N trials drawn by each search (targets set again)")
    parser.add_argument("--json", metavar="FILE", help="write every figure to FILE")
    args = parser.parse_args(argv)
    if args.n_trials is not None and args.n_trials < 1:
        print(f"--n-trials {args.n_trials}: must be at least 1; give the number of trials "
              "to keep, or leave it out for every trial.", file=sys.stderr)  # fmt: skip
        return 2
    try:
        runs = load(args.from_json)
    except SystemExit as exc:
        print(exc, file=sys.stderr)
        return 1
    pairs = sorted({(n, s) for n, s, _ in runs}, key=lambda p: (list(WORKLOADS).index(p[0]), p[1]))
    rows = [b for n, s in pairs if (b := pair_bound(runs, n, s, args.n_trials)) is not None]
    if not rows:
        print("No (workload, seed) pair with a random search in the file(s): nothing to "
              "bound; run the benchmark with the `random` method.", file=sys.stderr)  # fmt: skip
        return 1
    cut = f", first {args.n_trials} trials drawn" if args.n_trials else ""
    print(f"Bound per (workload, seed){cut}: random search's energy to target over ...")
    print(f"  {'workload':<15}{'seed':>5}{'k':>4}{'oracle':>9}{'same seq':>10}{'TPE k':>7}"
          f"{'TPE oracle':>12}{'any':>8}{'measured':>10}")  # fmt: skip

    def cell(v: float | None, width: int, spec: str = ".2f") -> str:
        return f"{'-' if v is None else format(v, spec):>{width}}"

    for b in rows:
        rnd, tpe = b.get("random", {}), b.get("tpe", {})
        if not rnd.get("reached"):
            print(f"  {b['workload']:<15}{b['seed']:>5}   random search never reached the "
                  f"target in {rnd.get('n_trials')} trials")  # fmt: skip
            continue
        print(f"  {b['workload']:<15}{b['seed']:>5}{rnd['k']:>4}"
              f"{cell(rnd['oracle_ratio'], 9)}{cell(rnd['same_sequence_ratio'], 10)}"
              f"{cell(tpe.get('k'), 7, 'd')}{cell(tpe.get('oracle_ratio'), 12)}"
              f"{cell(b.get('oracle_any_ratio'), 8)}{cell(b.get('measured_defaults_ratio'), 10)}")
    reached = [b for b in rows if b["random"].get("reached")]
    tpe_reached = [b for b in rows if b.get("tpe", {}).get("reached")]
    ks = [float(b["random"]["k"]) for b in reached]
    def q3(values: list[float]) -> tuple[float, float, float] | None:
        return quantiles(values) if values else None  # no NaN in the JSON

    summary = {
        "pairs": len(rows), "random_reached": len(reached), "tpe_reached": len(tpe_reached),
        "n_trials": args.n_trials,
        "oracle_random": q3([b["random"]["oracle_ratio"] for b in reached]),
        "same_sequence": q3([b["random"]["same_sequence_ratio"] for b in reached]),
        "k": q3(ks),
        "oracle_tpe": q3([b["tpe"]["oracle_ratio"] for b in tpe_reached]),
        "oracle_any": q3([b["oracle_any_ratio"] for b in reached if "oracle_any_ratio" in b]),
        "measured_defaults": q3([b["measured_defaults_ratio"] for b in reached
                                 if "measured_defaults_ratio" in b]),
        "at_least_5": sum(1 for b in reached if b["random"]["oracle_ratio"] >= 5.0),
        "same_sequence_at_least_5": sum(
            1 for b in reached if b["random"]["same_sequence_ratio"] >= 5.0
        ),
    }  # fmt: skip
    print(f"\nMedians [Q1, Q3] over the {len(reached)} pairs of {len(rows)} where random search "
          "reached the target:")  # fmt: skip
    print(f"  oracle (cheapest configuration at target, random's draws): "
          f"{fmt([b['random']['oracle_ratio'] for b in reached])}; >= 5 in "
          f"{summary['at_least_5']} pairs")
    print(f"  same sequence, pruned (first trial + one at target trained): "
          f"{fmt([b['random']['same_sequence_ratio'] for b in reached])}; >= 5 in "
          f"{summary['same_sequence_at_least_5']} pairs")
    print(f"  k, random search's first trial at target: {fmt(ks, '.1f')}  "
          f"(k / 2: {quantiles(ks)[0] / 2:.1f})")
    print(f"  oracle, TPE's draws ({len(tpe_reached)} pairs where TPE reached the target): "
          f"{fmt([b['tpe']['oracle_ratio'] for b in tpe_reached])}")
    any_r = [b["oracle_any_ratio"] for b in reached if "oracle_any_ratio" in b]
    print(f"  oracle, cheapest at target of random's or TPE's draws: {fmt(any_r)}")
    meas = [b["measured_defaults_ratio"] for b in reached if "measured_defaults_ratio" in b]
    if meas:
        print(f"  measured, random / wattwise defaults (same pairs; 0 = defaults never "
              f"reached it): {fmt(meas)}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump({"summary": summary, "pairs": rows}, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())

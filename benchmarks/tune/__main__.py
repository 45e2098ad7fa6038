"""Tuning benchmark: what each search method spends to find a good configuration.

One command, offline (data ship with scikit-learn and Python, or are generated)::

    .venv/bin/python -m benchmarks.tune [--quick] [--json FILE] [--no-ray]
        [--seeds N] [--first-seed F] [--n-trials N] [--workloads a,b] [--methods a,b]

Full: 4 workloads x 5 seeds x 5 methods, 24 trials each. ``--quick``: 2 seeds, 12 trials.
Methods (equal trial counts, the same seeds): random search with full training; Optuna TPE
without pruning; Optuna TPE + Optuna's ``HyperbandPruner``; Ray Tune's ``ASHAScheduler``;
``wattwise.tune`` with its defaults. Energy is measured by wattwise with the meters this
machine has (printed: on a VM without RAPL, the CPU and DRAM *models*, i.e. estimates from
CPU time; the ratios between methods are what matters).

Per workload and seed, the target is within 0.5 accuracy points (or 2 % of the loss) of the
best value any method found. Per method: energy to reach the target (cumulative energy of
its trials in the order they ended, up to the first complete trial at the target), total
energy (trials + driver), best value, and the whole search over one training of its chosen
configuration (measured). Medians and interquartile ranges over seeds; the targets of the
defaults are checked on medians over seeds and workloads.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import tempfile
import time
from typing import Any

from benchmarks.tune import methods as m
from benchmarks.tune.workloads import WORKLOADS, Workload


def quantiles(values: list[float]) -> tuple[float, float, float]:
    """Median and interquartile range (inclusive method); inf allowed."""
    vals = sorted(values)
    if not vals:
        return (math.nan, math.nan, math.nan)
    if len(vals) == 1:
        return (vals[0], vals[0], vals[0])

    def q(p: float) -> float:
        pos = p * (len(vals) - 1)
        lo, hi = math.floor(pos), math.ceil(pos)
        if lo == hi or vals[lo] == vals[hi]:
            return vals[lo]
        if math.isinf(vals[hi]):
            return math.inf
        return vals[lo] + (vals[hi] - vals[lo]) * (pos - lo)

    return (q(0.5), q(0.25), q(0.75))


def fmt_q(values: list[float], spec: str = ".1f") -> str:
    """``median [q1, q3]``."""
    med, lo, hi = quantiles(values)

    def one(v: float) -> str:
        return "never" if math.isinf(v) else ("-" if math.isnan(v) else format(v, spec))

    return f"{one(med)} [{one(lo)}, {one(hi)}]"


def energy_to_target(result: m.SearchResult, workload: Workload, target: float) -> float:
    """Cumulative energy, trials in the order they ended, to the first complete at target."""
    total = 0.0
    for row in sorted(result.trials, key=lambda r: r.order):
        total += row.energy_j
        if row.state == "complete" and workload.reaches(row.value, target):
            return total
    return math.inf


def ratio(a: float | None, b: float | None) -> float:
    """a / b, with never (inf) handled: inf/x = inf, x/inf = 0, inf/inf = nan."""
    if a is None or b is None:
        return math.nan
    if math.isinf(a) and math.isinf(b):
        return math.nan
    if math.isinf(b):
        return 0.0
    if b <= 0:
        return math.nan
    return a / b


def meters_used(store: str) -> list[str]:
    """The meters that measured energy in this benchmark's ledger."""
    from wattwise.store import open_store

    if not os.path.exists(store):  # nothing measured yet
        return []
    led = open_store(store)
    try:
        return sorted({c.meter for run in led.list_runs() for c in run.components
                       if c.energy_j > 0})  # fmt: skip
    finally:
        led.close()


def set_targets(results: list[m.SearchResult]) -> None:
    """Per (workload, seed): the target from the best value of every method present, and
    each search's energy to reach it."""
    for name, seed in {(r.workload, r.seed) for r in results}:
        workload = WORKLOADS[name]
        batch = [r for r in results if (r.workload, r.seed) == (name, seed)]
        found = [r.best_value for r in batch if r.best_value is not None]
        if not found:
            continue
        best_any = found[0]
        for v in found[1:]:
            if workload.better(v, best_any):
                best_any = v
        for r in batch:
            r.energy_to_target_j = energy_to_target(r, workload, workload.threshold(best_any))


def main(argv: list[str] | None = None) -> int:
    """Run the searches, print the tables, check the targets."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.tune", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="2 seeds, 12 trials")
    parser.add_argument("--seeds", type=int, help="seeds 0..N-1 (full 5, quick 2)")
    parser.add_argument(
        "--first-seed", type=int, default=0, metavar="F",
        help="start at seed F (seeds F..N-1): extends an earlier run, merged with --from",
    )  # fmt: skip
    parser.add_argument("--n-trials", type=int, help="trials per search (full 24, quick 12)")
    parser.add_argument("--workloads", help=f"comma list of {', '.join(WORKLOADS)}")
    parser.add_argument("--methods", help=f"comma list of {', '.join(m.LABELS)}")
    parser.add_argument("--no-ray", action="store_true", help="skip Ray Tune ASHA")
    parser.add_argument(
        "--ray-seeds", type=int,
        help="run Ray Tune ASHA on the first N seeds only (quick: 1; full: every seed)",
    )  # fmt: skip
    parser.add_argument("--json", metavar="FILE", help="write every figure to FILE")
    parser.add_argument("--store", help="ledger file (default: a temporary one)")
    parser.add_argument(
        "--from", dest="from_json", metavar="FILE", action="append",
        help="print the tables of the runs in FILE (an earlier --json, complete or not; "
        "plain or .gz); "
        "repeat to merge runs (a later file's search replaces an earlier one's; targets and "
        "energy to target computed again over every method)",
    )  # fmt: skip
    parser.add_argument(
        "--rename", action="append", default=[], metavar="OLD=NEW",
        help="with --from: read method OLD as NEW (a run made before the defaults changed)",
    )  # fmt: skip
    parser.add_argument(
        "--refinal", action="store_true",
        help="with --from: measure each search's final training again",
    )  # fmt: skip
    args = parser.parse_args(argv)
    if args.from_json:
        renames = dict(r.split("=", 1) for r in args.rename)
        return from_json(args.from_json, args.json, refinal=args.refinal, renames=renames)
    seeds = args.seeds or (2 if args.quick else 5)
    n_trials = args.n_trials or (12 if args.quick else 24)
    names = args.workloads.split(",") if args.workloads else list(WORKLOADS)
    methods = args.methods.split(",") if args.methods else list(m.METHODS)
    if not 0 <= args.first_seed < seeds:
        print(f"--first-seed {args.first_seed}: must be at least 0 and below --seeds "
              f"({seeds}); give --seeds N with F < N.", file=sys.stderr)  # fmt: skip
        return 2
    for name in names:
        if name not in WORKLOADS:
            print(f"Unknown workload {name!r}; use {', '.join(WORKLOADS)}.", file=sys.stderr)
            return 2
    for method in methods:
        if method not in m.LABELS:
            print(f"Unknown method {method!r}; use {', '.join(m.LABELS)}.", file=sys.stderr)
            return 2
    skipped_ray = ""
    ray_seeds = args.ray_seeds if args.ray_seeds is not None else (1 if args.quick else seeds)
    if "ray-asha" in methods and ray_seeds < seeds:
        skipped_ray = (
            f"Ray Tune ASHA on the first {ray_seeds} seed(s) only: on this machine each Ray "
            "trial also starts or reuses a worker process, several times slower than a trial "
            "in process"
        )
    if "ray-asha" in methods and args.no_ray:
        methods.remove("ray-asha")
        skipped_ray = "Ray Tune ASHA skipped (--no-ray)."
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    tmp = tempfile.mkdtemp(prefix="wattwise-tune-bench-")
    store = args.store or os.path.join(tmp, "ledger.db")
    m.warm_up(names)
    started = time.perf_counter()
    print(
        f"{len(names)} workloads x {seeds - args.first_seed} seeds"
        + (f" ({args.first_seed}..{seeds - 1})" if args.first_seed else "")
        + f" x {len(methods)} methods, {n_trials} trials "
        f"each; ledger {store}" + (f"; {skipped_ray}" if skipped_ray else ""), flush=True
    )  # fmt: skip
    results: list[m.SearchResult] = []

    def searched(res: m.SearchResult) -> None:
        states = [t.state for t in res.trials]
        print(
            f"  {res.workload} seed {res.seed} {res.method}: best {res.best_value}, "
            f"{res.total_energy_j:.1f} J, {states.count('complete')} complete / "
            f"{states.count('pruned')} pruned, {res.wall_s:.0f} s", flush=True,
        )  # fmt: skip
        results.append(res)

    def save() -> None:
        set_targets(results)
        if args.json:  # after every workload and seed: an interrupted run keeps its figures
            partial = {"partial": True, "meters": meters_used(store),
                       "wall_s": time.perf_counter() - started,
                       "runs": [r.to_dict() for r in results]}  # fmt: skip
            with open(args.json, "w", encoding="utf-8") as fh:
                json.dump(partial, fh, indent=1, default=str)

    # Ray last, in its own phase: ray.init() starts Ray's processes as this process's
    # children, and a wattwise run measures its process tree, so while Ray is up every run
    # of this process (trials of the other methods, final trainings) would be charged
    # Ray's background CPU and memory.
    for seed in range(args.first_seed, seeds):  # seeds outside: a cut run has all workloads
        for name in names:
            workload = WORKLOADS[name]
            for method in methods:
                if method == "ray-asha":
                    continue
                res = m.run_optuna(method, workload, seed, n_trials, store)
                if res.best_params:
                    res.final_energy_j = m.final_training(workload, res.best_params, seed, store)
                searched(res)
            if results:
                save()
    if "ray-asha" in methods:
        t0 = time.perf_counter()
        m.start_ray()
        print(f"Ray started in {time.perf_counter() - t0:.1f} s", flush=True)
        ray_results = []
        for seed in range(args.first_seed, ray_seeds):
            for name in names:
                res = m.run_ray(WORKLOADS[name], seed, n_trials, store, tmp)
                searched(res)
                ray_results.append(res)
                save()
        m.stop_ray()
        for res in ray_results:  # Ray's processes gone: measured as the others' finals
            if res.best_params:
                workload = WORKLOADS[res.workload]
                res.final_energy_j = m.final_training(workload, res.best_params, res.seed, store)
        save()
    wall = time.perf_counter() - started
    report = summarize(results, names, methods, seeds, n_trials, store, wall)
    if skipped_ray:
        report["notes"].append(skipped_ray)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(report, fh, indent=1, default=str)
        print(f"\nWrote {args.json}")
    return 0


def read_json(path: str) -> Any:
    """A ``--json`` file, plain or gzipped (``.gz``: how the recorded runs are kept)."""
    import gzip

    opener: Any = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as fh:
        return json.load(fh)


def from_json(
    paths: list[str], out: str | None, *, refinal: bool = False,
    renames: dict[str, str] | None = None,
) -> int:  # fmt: skip
    """The tables of earlier runs' ``--json`` (complete, or partial after an interruption)."""
    merged: dict[tuple[str, int, str], m.SearchResult] = {}
    data: dict[str, Any] = {}
    for path in paths:
        one = read_json(path)
        data = {**one, "wall_s": data.get("wall_s", 0.0) + one.get("wall_s", 0.0),
                "meters": sorted({*data.get("meters", []), *one.get("meters", [])})}  # fmt: skip
        for r in one["runs"]:
            r = dict(r)
            r["method"] = (renames or {}).get(r["method"], r["method"])
            r["trials"] = [m.TrialRow(**t) for t in r["trials"]]
            for key in ("energy_to_target_j", "final_energy_j"):
                if isinstance(r.get(key), str):  # inf written by default=str
                    r[key] = float(r[key])
            res = m.SearchResult(**r)
            merged[(res.workload, res.seed, res.method)] = res
    results = list(merged.values())
    if len(paths) > 1:  # the target is the best of every method now present
        set_targets(results)
    if refinal:
        store = os.path.join(tempfile.mkdtemp(prefix="wattwise-tune-bench-"), "ledger.db")
        for res in results:
            if res.best_params:
                workload = WORKLOADS[res.workload]
                workload.load()
                res.final_energy_j = m.final_training(workload, res.best_params, res.seed, store)
        data["meters"] = meters_used(store)
    names = list(dict.fromkeys(r.workload for r in results))
    methods = list(dict.fromkeys(r.method for r in results))
    seeds = max(r.seed for r in results) + 1
    n_trials = max(len(r.trials) for r in results)
    report = summarize(
        results, names, methods, seeds, n_trials, None, data.get("wall_s", 0.0),
        from_meters=data.get("meters"),
    )  # fmt: skip
    if out:
        with open(out, "w", encoding="utf-8") as fh:
            json.dump(report, fh, indent=1, default=str)
    return 0


def summarize(
    results: list[m.SearchResult], names: list[str], methods: list[str], seeds: int,
    n_trials: int, store: str | None, wall: float, from_meters: list[str] | None = None,
) -> dict[str, Any]:  # fmt: skip
    """Print the tables; return every figure as JSON."""
    import platform

    by = {(r.workload, r.seed, r.method): r for r in results}
    meters = meters_used(store) if store else list(from_meters or [])
    print()
    print(
        f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}; meters: {', '.join(meters)}; {wall:.0f} s wall."
    )
    report: dict[str, Any] = {
        "seeds": seeds, "n_trials": n_trials, "meters": meters, "wall_s": wall,
        "workloads": {}, "methods": methods, "notes": [], "runs": [r.to_dict() for r in results],
    }  # fmt: skip
    for name in names:
        workload = WORKLOADS[name]
        print(f"\n{name} ({workload.metric}, {workload.direction}; {workload.data})")
        rnd = [t.value for s in range(seeds) if (name, s, "random") in by
               for t in by[(name, s, "random")].trials
               if t.state == "complete" and t.value is not None]  # fmt: skip
        spread = None
        if rnd:
            best = max(rnd) if workload.direction == "maximize" else min(rnd)
            med = statistics.median(rnd)
            if workload.direction == "maximize":
                spread = {"best": best, "median": med, "points": (best - med) * 100,
                          "ok": (best - med) * 100 >= 5}  # fmt: skip
                print(f"  hyperparameters matter: random configs best {best:.4f} vs median "
                      f"{med:.4f}: {spread['points']:.1f} points (need >= 5: "
                      f"{'yes' if spread['ok'] else 'NO'})")  # fmt: skip
            else:
                rel = (med - best) / med * 100
                spread = {"best": best, "median": med, "percent": rel, "ok": rel >= 20}
                print(f"  hyperparameters matter: random configs best {best:.4f} vs median "
                      f"{med:.4f}: {rel:.0f} % (need >= 20 %: "
                      f"{'yes' if spread['ok'] else 'NO'})")  # fmt: skip
        head = (f"  {'method':<30}{'energy to target J':>26}{'total J':>24}"
                f"{'best':>26}{'search/final':>22}")  # fmt: skip
        print(head)
        rows = {}
        for method in methods:
            rs = [by[(name, s, method)] for s in range(seeds) if (name, s, method) in by]
            ett = [r.energy_to_target_j if r.energy_to_target_j is not None else math.inf
                   for r in rs]  # fmt: skip
            tot = [r.total_energy_j for r in rs]
            bst = [r.best_value for r in rs if r.best_value is not None]
            sf = [ratio(r.total_energy_j, r.final_energy_j) for r in rs]
            rows[method] = {
                "energy_to_target_j": quantiles(ett), "total_energy_j": quantiles(tot),
                "best": quantiles(bst), "search_over_final": quantiles(sf),
                "never_reached": sum(1 for v in ett if math.isinf(v)),
            }  # fmt: skip
            print(f"  {m.LABELS[method]:<30}{fmt_q(ett):>26}{fmt_q(tot):>24}"
                  f"{fmt_q(bst, '.4f'):>26}{fmt_q(sf, '.2f'):>22}")  # fmt: skip
        report["workloads"][name] = {"spread": spread, "methods": rows}
    if "wattwise-defaults" in methods:
        report["targets"] = targets(by, names, methods, seeds)
    return report


def targets(
    by: dict[tuple[str, int, str], m.SearchResult], names: list[str], methods: list[str],
    seeds: int,
) -> dict[str, Any]:  # fmt: skip
    """The defaults' targets, on medians over every (workload, seed) pair."""
    print("\nTargets of wattwise's defaults (medians over every workload and seed):")
    out: dict[str, Any] = {}
    pairs = [(n, s) for n in names for s in range(seeds) if (n, s, "wattwise-defaults") in by]

    def per_pair(other: str) -> list[float]:
        vals = []
        for n, s in pairs:
            if (n, s, other) in by:
                a = by[(n, s, other)].energy_to_target_j
                b = by[(n, s, "wattwise-defaults")].energy_to_target_j
                r = ratio(math.inf if a is None else a, math.inf if b is None else b)
                if not math.isnan(r):
                    vals.append(r)
        return vals

    for other, need in (("random", 5.0), ("tpe-hyperband", 1.5), ("ray-asha", 1.0)):
        if other not in methods:
            print(f"  energy to target, {other} / defaults: not measured ({other} not run)")
            continue
        vals = per_pair(other)
        med = quantiles(vals)[0] if vals else math.nan
        ok = med >= need
        out[f"ett_{other}_over_defaults"] = {"median": med, "need": need, "met": ok,
                                             "per_pair": vals}  # fmt: skip
        print(f"  energy to target, {other} / defaults: {fmt_q(vals, '.2f')} "
              f"(need >= {need}: {'met' if ok else 'NOT met'})")  # fmt: skip
    sf = [ratio(by[(n, s, 'wattwise-defaults')].total_energy_j,
                by[(n, s, 'wattwise-defaults')].final_energy_j) for n, s in pairs]  # fmt: skip
    med = quantiles(sf)[0] if sf else math.nan
    out["search_over_final"] = {"median": med, "need": 3.0, "met": med <= 3.0, "per_pair": sf}
    print(f"  whole search / one final training: {fmt_q(sf, '.2f')} (need <= 3: "
          f"{'met' if med <= 3.0 else 'NOT met'})")  # fmt: skip
    if "random" in methods:
        gaps = []
        for n, s in pairs:
            w = WORKLOADS[n]
            if (n, s, "random") not in by:  # a partial run
                continue
            a, b = by[(n, s, "random")].best_value, by[(n, s, "wattwise-defaults")].best_value
            if a is None or b is None:
                continue
            if w.direction == "maximize":
                gaps.append(((a - b) * 100, 0.5))  # points behind random
            else:
                gaps.append(((b - a) / a * 100, 2.0))  # percent worse than random
        norm = [g / lim for g, lim in gaps]  # in units of the allowed gap
        med = quantiles(norm)[0] if norm else math.nan
        out["best_vs_random"] = {"median_in_allowed_units": med, "met": med <= 1.0,
                                 "per_pair": [g for g, _ in gaps]}  # fmt: skip
        print(
            f"  best value behind random search's (points, or % for losses): "
            f"{fmt_q([g for g, _ in gaps], '+.2f')}; in units of the allowed gap (0.5 pt "
            f"/ 2 %): median {med:.2f} (need <= 1: {'met' if med <= 1 else 'NOT met'})"
        )
    return out


if __name__ == "__main__":
    sys.exit(main())

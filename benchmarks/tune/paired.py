"""Every method against one reference, pair by pair: how often each reached the target, and
how it did where the reference also reached it. A companion to the targets table, whose
medians of per-pair ratios hide how many pairs were "never".

One command, offline, from recorded runs (nothing is run again)::

    python -m benchmarks.tune.paired --from A.json.gz [--from B.json.gz ...]
        [--against tpe-hyperband] [--drop wattwise-defaults]

The target of each (workload, seed) pair is set again over every method present (as
``--from`` does), so adding methods can move every method's figures. Per method:

* **reached**: pairs where a complete trial came within the target;
* **energy to target**: its median over those pairs, in joules;
* **wins-losses** against the reference: pairs where the method reached the target on
  less energy, or reached it where the reference did not (a win), and the converse (a
  loss); pairs where neither reached it are left out;
* **geometric mean** of reference ÷ method over the pairs where both reached it (> 1: the
  method needed less);
* **total energy** and **search ÷ final**: medians over every pair.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys

from benchmarks.tune import methods as m
from benchmarks.tune.__main__ import read_json, set_targets


def load(paths: list[str], drop: set[str]) -> dict[tuple[str, int, str], m.SearchResult]:
    """The searches of the files, later files replacing earlier ones' (workload, seed,
    method), less the methods in ``drop``; targets set over all of them."""
    merged: dict[tuple[str, int, str], m.SearchResult] = {}
    for path in paths:
        for raw in read_json(path)["runs"]:
            r = dict(raw)
            r["trials"] = [m.TrialRow(**t) for t in r["trials"]]
            for key in ("energy_to_target_j", "final_energy_j"):
                if isinstance(r.get(key), str):  # inf written by default=str
                    r[key] = float(r[key])
            res = m.SearchResult(**r)
            if res.method not in drop:
                merged[(res.workload, res.seed, res.method)] = res
    set_targets(list(merged.values()))
    return merged


def main(argv: list[str] | None = None) -> int:
    """Print the paired table."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.tune.paired",
                                     description=__doc__)  # fmt: skip
    parser.add_argument("--from", dest="paths", action="append", required=True,
                        metavar="FILE", help="a --json of python -m benchmarks.tune")  # fmt: skip
    parser.add_argument("--against", default="tpe-hyperband", help="the reference method")
    parser.add_argument("--drop", action="append", default=[], metavar="METHOD",
                        help="leave a method out (its searches do not set targets)")  # fmt: skip
    args = parser.parse_args(argv)
    try:
        by = load(args.paths, set(args.drop))
    except (OSError, ValueError, KeyError, TypeError) as err:
        print(f"Cannot read the runs: {err}. Give --json files of python -m benchmarks.tune.",
              file=sys.stderr)  # fmt: skip
        return 2
    pairs = sorted({(w, s) for w, s, _ in by})
    methods = sorted({meth for _, _, meth in by})
    if args.against not in methods:
        print(f"No searches of {args.against!r} in these files; use --against one of "
              f"{', '.join(methods)}.", file=sys.stderr)  # fmt: skip
        return 2
    print(f"{len(pairs)} (workload, seed) pairs; reference: {args.against}")
    head = ("method", "reached", "ETT J (reached)", "wins-losses", "geo ref/method",
            "total J", "search/final")  # fmt: skip
    print(f"{head[0]:<22}{head[1]:>9}{head[2]:>17}{head[3]:>13}{head[4]:>16}{head[5]:>9}"
          f"{head[6]:>14}")  # fmt: skip
    for meth in methods:
        rows = [by[(w, s, meth)] for w, s in pairs if (w, s, meth) in by]
        ett = [r.energy_to_target_j for r in rows if r.energy_to_target_j is not None]
        reached = [e for e in ett if not math.isinf(e)]
        wins = losses = 0
        logs = []
        for r in rows:
            ref = by.get((r.workload, r.seed, args.against))
            if ref is None or meth == args.against:
                continue
            a = math.inf if ref.energy_to_target_j is None else ref.energy_to_target_j
            b = math.inf if r.energy_to_target_j is None else r.energy_to_target_j
            if math.isinf(a) and math.isinf(b):
                continue
            if not math.isinf(a) and not math.isinf(b):
                logs.append(math.log(a / b))
            wins, losses = (wins + 1, losses) if b < a else (wins, losses + 1)
        geo = f"{math.exp(statistics.mean(logs)):.2f} ({len(logs)})" if logs else "-"
        tot = statistics.median(r.total_energy_j for r in rows)
        sf = [r.total_energy_j / r.final_energy_j for r in rows if r.final_energy_j]
        print(f"{meth:<22}{f'{len(reached)}/{len(rows)}':>9}"
              f"{statistics.median(reached) if reached else math.nan:>17.1f}"
              f"{'-' if meth == args.against else f'{wins}-{losses}':>13}{geo:>16}"
              f"{tot:>9.1f}{statistics.median(sf) if sf else math.nan:>14.2f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Does the energy prediction's interval hold the actual total? Is pruning's avoided energy right?

One command, offline (the digits MLP of ``examples/tune_digits.py``, every figure measured in
this run)::

    python benchmarks/tune/predict_coverage.py [--configs 16] [--epochs 27] [--seed 0] [--quick]

Each of ``--configs`` random configurations (learning rate, width, weight decay) is trained
to the end, ``--epochs`` epochs, as a run of a private ledger, reporting its cumulative
energy (``Run.snapshot()``) at every epoch, as a trial's ``report()`` does. Then, for each:

* **Prediction coverage** (issue 12, item 4): ``wattwise.tracking.predict_energy`` is given
  the first k reports (k = 3, 5, 10) and the last step, and the benchmark checks whether
  the run's measured total (its ledger energy) lies in the interval. Target: >= 80 % of
  the predictions made.
* **Avoided energy** (item 3): a trial that successive halving (min resource 1, reduction
  factor 3) stops at step 1, 3 or 9 has exactly these first reports; the energy pruning
  avoided is what the same configuration spent after that report, measured here because it
  was trained to the end. ``wattwise.tuning.estimate_avoided`` is given the reports up to
  the stop and compared with it, per stop step and summed as a study would sum it.
  Target: the sum within ±25 % of the measured value.

Prints the figures and exits 0; it asserts nothing (a benchmark, not a test).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent / "examples"))

import torch  # noqa: E402
import tune_digits  # noqa: E402

import wattwise  # noqa: E402
from wattwise.tracking import predict_energy, relative_error  # noqa: E402
from wattwise.tuning import estimate_avoided  # noqa: E402

AUGMENT = 1
PREDICT_AFTER = (3, 5, 10)
STOP_STEPS = (1, 3, 9)  # successive halving's rungs with min_resource=1, reduction_factor=3


class Recorder:
    """Stands in for a trial: keeps ``(step, cumulative energy)`` at each report."""

    def __init__(self, run: wattwise.Run) -> None:
        self.run = run
        self.reports: list[tuple[int, float]] = []

    def report(self, value: float, step: int) -> None:
        self.reports.append((step, self.run.snapshot()["energy_j"]))

    def should_prune(self) -> bool:
        return False


def sample(rng: random.Random, epochs: int) -> dict[str, Any]:
    """A random configuration of tune_digits' space (log-uniform, as Optuna samples it)."""

    def log_uniform(low: float, high: float) -> float:
        return float(10 ** rng.uniform(math.log10(low), math.log10(high)))

    return {
        "lr": log_uniform(1e-4, 3e-1), "width": round(log_uniform(16, 512)),
        "weight_decay": log_uniform(1e-6, 1e-2), "epochs": epochs,
    }  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=27)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="8 configurations, 12 epochs")
    parser.add_argument("--store", help="ledger file (default: a temporary one)")
    parser.add_argument("--dump", help="write each configuration's reports and total (JSON)")
    parser.add_argument("--from-dump", help="analyse a --dump file instead of training")
    args = parser.parse_args(argv)
    if args.quick:
        args.configs, args.epochs = 8, 12
    store = args.store or os.path.join(tempfile.mkdtemp(prefix="wattwise-pred-"), "ledger.db")
    torch.set_num_threads(1)
    tune_digits.load_data(AUGMENT, 0)
    rng = random.Random(args.seed)
    end = args.epochs - 1
    if not args.from_dump:
        print(f"Training {args.configs} configurations x {args.epochs} epochs; ledger {store}",
              flush=True)  # fmt: skip
    trained: list[tuple[dict[str, Any], list[tuple[int, float]], float]] = []
    if args.from_dump:  # analyse trainings measured before
        with open(args.from_dump, encoding="utf-8") as f:
            trained = [(d["params"], [(int(s), float(e)) for s, e in d["reports"]],
                        float(d["total_j"])) for d in json.load(f)]  # fmt: skip
        end = len(trained[0][1]) - 1
        args.epochs = end + 1
    for i in range(0 if args.from_dump else args.configs):
        params = sample(rng, args.epochs)
        with wattwise.track(f"pred-{i}", store=store, emit_warnings=False) as run:
            rec = Recorder(run)
            tune_digits.train(params, rec, augment=AUGMENT)
        total = run.result.energy_j
        trained.append((params, rec.reports, total))
        print(f"  #{i}: width {params['width']}, lr {params['lr']:.2g}: {total:.1f} J "
              f"(first epoch {rec.reports[0][1]:.1f} J)", flush=True)  # fmt: skip
        if args.dump:  # after each training: a long run stopped early keeps what it measured
            with open(args.dump, "w", encoding="utf-8") as f:
                json.dump([{"params": p, "reports": r, "total_j": t} for p, r, t in trained], f)
    print()
    print("Prediction of the total after k reports (interval "
          f"{predict_energy([(0, 0), (1, 1), (2, 2)], end_step=3).level:.0%}):")  # type: ignore[union-attr]  # fmt: skip
    for calibrated in (False, True):
        print("  calibrated on the other configurations (leave one out, as a study's complete "
              "trials calibrate a running one):" if calibrated else
              "  from each run's own reports only (as wattwise run predicts):")  # fmt: skip
        made = held = 0
        for k in PREDICT_AFTER:
            if k >= args.epochs:
                continue
            hits, widths, errors = [], [], []
            for i, (_params, reports, total) in enumerate(trained):
                others = [
                    relative_error(r, k, t, end) for j, (_, r, t) in enumerate(trained) if j != i
                ] if calibrated else []  # fmt: skip
                p = predict_energy(reports[:k], end_step=end,
                                   calibration=[e for e in others if e is not None])  # fmt: skip
                if p is None:
                    continue
                hits.append(p.contains(total))
                widths.append((p.high_j - p.low_j) / 2 / total)
                errors.append((p.total_j - total) / total)
            made += len(hits)
            held += sum(hits)
            if hits:
                print(f"    k={k:>2}: {sum(hits)}/{len(hits)} intervals hold the total "
                      f"({sum(hits) / len(hits):.0%}); median half-width ±"
                      f"{statistics.median(widths):.0%}; median point error "
                      f"{statistics.median(errors):+.1%}")  # fmt: skip
        if made:
            share = held / made
            print(f"    all: {held}/{made} = {share:.0%} (target >= 80 %: "
                  f"{'met' if share >= 0.8 else 'NOT met'})")  # fmt: skip

    print()
    print("Energy avoided by stopping at a rung, estimated vs measured (trained to the end):")
    sum_est = sum_meas = 0.0
    in_interval = with_interval = 0
    for stop in STOP_STEPS:
        if stop >= end:
            continue
        est_s = meas_s = 0.0
        for _params, reports, total in trained:
            upto = [r for r in reports if r[0] <= stop]
            measured = total - upto[-1][1]
            e = estimate_avoided(upto, energy_j=upto[-1][1], planned_step=float(end),
                                 declared=True)  # fmt: skip
            est_s += e.energy_j
            meas_s += measured
            if e.low_j is not None and e.high_j is not None:
                with_interval += 1
                in_interval += e.low_j <= measured <= e.high_j
        sum_est += est_s
        sum_meas += meas_s
        print(f"  stop at step {stop}: estimated {est_s:.1f} J, measured {meas_s:.1f} J "
              f"({(est_s - meas_s) / meas_s:+.1%})")  # fmt: skip
    if sum_meas > 0:
        rel = (sum_est - sum_meas) / sum_meas
        print(f"  all stops: estimated {sum_est:.1f} J, measured {sum_meas:.1f} J ({rel:+.1%}; "
              f"target within ±25 %: {'met' if abs(rel) <= 0.25 else 'NOT met'})")  # fmt: skip
    if with_interval:
        print(f"  intervals holding the measured avoided energy: {in_interval}/{with_interval}"
              f" ({in_interval / with_interval:.0%})")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())

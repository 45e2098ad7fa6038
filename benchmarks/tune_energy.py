"""What does a hyperparameter search cost? Random search vs Optuna TPE vs wattwise tune.

One command; every figure below is measured in the same run, with the same meters::

    python benchmarks/tune_energy.py [--n-trials 24] [--seed 0]

Task: a PyTorch MLP on the digits data with every one-pixel shift added (16k images, split
by original image), search space lr x width x weight decay x epochs (5-40), validation
accuracy maximised. Three searches with the same trial count and the same seed:

1. random search, every trial trained to the end (the common practice);
2. Optuna TPE without pruning;
3. wattwise tune: TPE plus Optuna's pruner (default Hyperband), energy as fidelity.

All three run through ``wattwise.tune`` with the inline executor, so every trial is metered
the same way (a run in a private ledger; ``NopPruner`` for the first two). For each: best
accuracy, total energy (trials + driver), energy until the first trial within 0.5 points
of the best accuracy any method found, and the whole search's energy over one training of
its final configuration (that training is measured too). Targets (issue 3): the same best
accuracy (within 0.5 points) for at least 5x less energy than random search, and a whole
search that costs at most 3 trainings of the final model.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "examples"))

import optuna  # noqa: E402
import torch  # noqa: E402
import tune_digits  # noqa: E402

import wattwise  # noqa: E402
from wattwise.store import open_store  # noqa: E402

AUGMENT = 1
THRESHOLD_POINTS = 0.5


def objective(trial: Any) -> float:
    """The digits MLP on the augmented data (see examples/tune_digits.py)."""
    torch.set_num_threads(1)
    params = tune_digits.suggest(trial)
    if hasattr(trial, "set_max_step"):
        trial.set_max_step(params["epochs"] - 1)
    return tune_digits.train(params, trial, augment=AUGMENT)


def search(
    label: str, sampler: Any, pruner: Any, *, n_trials: int, store: str, fidelity: bool
) -> dict[str, Any]:
    """One search through wattwise.tune; returns its figures."""
    t0 = time.perf_counter()
    result = wattwise.tune(
        objective, sampler, pruner=pruner, n_trials=n_trials, direction="maximize",
        energy_fidelity=fidelity, study_name=f"bench-{label}", store=store, progress=False,
        run_options={"emit_warnings": False},
    )  # fmt: skip
    wall = time.perf_counter() - t0
    counts = result.summary["n_trials"]
    print(
        f"  {label}: {counts['complete']} complete, {counts['pruned']} pruned, "
        f"{counts['fail']} failed; best {result.best_value:.4f}; "
        f"{result.spent.energy_j:.1f} J in {wall:.0f} s",
        flush=True,
    )
    return {"label": label, "result": result, "wall_s": wall}


def final_training(params: dict[str, Any], store: str, label: str) -> float:
    """Energy of one training of ``params`` to the end, in joules (measured)."""
    torch.set_num_threads(1)
    with wattwise.track(f"final-{label}", store=store, emit_warnings=False) as run:
        tune_digits.train(params, None, augment=AUGMENT)
    return run.result.energy_j


def main(argv: list[str] | None = None) -> int:
    """Run the three searches and print the comparison."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-trials", type=int, default=24)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--pruner", choices=("hyperband", "halving"), default="hyperband")
    parser.add_argument("--fidelity", choices=("energy", "step"), default="energy")
    parser.add_argument("--store", help="ledger file (default: a temporary one)")
    args = parser.parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    store = args.store or os.path.join(tempfile.mkdtemp(prefix="wattwise-bench-"), "ledger.db")
    tune_digits.load_data(AUGMENT, 0)
    n, seed = args.n_trials, args.seed
    pruner = (
        optuna.pruners.HyperbandPruner(min_resource=1, reduction_factor=3)
        if args.pruner == "hyperband"
        else optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3)
    )
    print(f"Searching {n} trials x 3 methods (seed {seed}); ledger {store}", flush=True)
    runs = [
        search("random-full", optuna.samplers.RandomSampler(seed=seed),
               optuna.pruners.NopPruner(), n_trials=n, store=store, fidelity=False),
        search("tpe-no-pruning", optuna.samplers.TPESampler(seed=seed),
               optuna.pruners.NopPruner(), n_trials=n, store=store, fidelity=False),
        search(f"wattwise-{args.pruner}-{args.fidelity}", optuna.samplers.TPESampler(seed=seed),
               pruner, n_trials=n, store=store, fidelity=args.fidelity == "energy"),
    ]  # fmt: skip
    best_any = max(r["result"].best_value for r in runs)
    threshold = best_any - THRESHOLD_POINTS / 100
    print("Training each method's final configuration once, to the end:", flush=True)
    for r in runs:
        result = r["result"]
        cumulative = 0.0
        r["to_threshold_j"] = None
        for t in sorted(result.trials, key=lambda t: t.number):
            cumulative += t.energy_j
            if t.state == "complete" and t.value is not None and t.value >= threshold:
                r["to_threshold_j"] = cumulative
                break
        r["final_j"] = final_training(result.best_params, store, r["label"])
        print(f"  {r['label']}: {r['final_j']:.1f} J ({result.best_params})", flush=True)
    led = open_store(store)
    meters = sorted(
        {c.meter for run in led.list_runs() for c in run.components if c.energy_j > 0}
    )
    led.close()
    print()
    print(f"Best accuracy any method found: {best_any:.4f}; threshold {threshold:.4f} "
          f"(within {THRESHOLD_POINTS} points). Meters: {', '.join(meters)}.")  # fmt: skip
    header = (
        f"{'method':<26}{'best acc':>9}{'energy J':>11}{'J to thr.':>11}"
        f"{'final J':>9}{'search/final':>14}{'wall s':>8}"
    )
    print(header)
    for r in runs:
        result = r["result"]
        to_thr = f"{r['to_threshold_j']:.1f}" if r["to_threshold_j"] is not None else "never"
        print(
            f"{r['label']:<26}{result.best_value:>9.4f}{result.spent.energy_j:>11.1f}"
            f"{to_thr:>11}{r['final_j']:>9.1f}{result.spent.energy_j / r['final_j']:>14.2f}"
            f"{r['wall_s']:>8.0f}"
        )
    rnd, tpe, ww = runs
    saving = rnd["result"].spent.energy_j / ww["result"].spent.energy_j
    gap = (rnd["result"].best_value - ww["result"].best_value) * 100
    ratio = ww["result"].spent.energy_j / ww["final_j"]
    print()
    print(f"Energy, random search / wattwise tune: {saving:.2f}x (target >= 5x: "
          f"{'met' if saving >= 5 else 'NOT met'}).")  # fmt: skip
    print(f"Energy, Optuna TPE no pruning / wattwise tune: "
          f"{tpe['result'].spent.energy_j / ww['result'].spent.energy_j:.2f}x.")  # fmt: skip
    print(f"Best accuracy, random minus wattwise: {gap:+.2f} points (target <= 0.5: "
          f"{'met' if gap <= THRESHOLD_POINTS else 'NOT met'}).")  # fmt: skip
    print(f"wattwise whole search / one training of its final model: {ratio:.2f} (target <= 3: "
          f"{'met' if ratio <= 3 else 'NOT met'}).")  # fmt: skip
    print(f"Pruning avoided (wattwise's own estimate): {ww['result'].avoided_energy_j:.1f} J.")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""What does a hyperparameter search cost? Random search vs Optuna TPE vs wattwise tune.

One command; every figure below is measured in the same run, with the same meters::

    python benchmarks/tune_energy.py [--n-trials 24] [--seed 0]

Task: a PyTorch MLP on the digits data with every one-pixel shift added (16k images, split
by original image), search space lr x width x weight decay, 27 epochs of training (the
fidelity axis: a trial that is not pruned trains 27 epochs), validation accuracy
maximised. Searches with the same trial count and the same seed:

1. random search, every trial trained to the end (the common practice);
2. Optuna TPE without pruning;
3. wattwise tune with pruning: the same random configurations as (1), stopped early by
   Optuna's successive halving (min 1 step, reduction factor 3) with energy as fidelity;
4. for reference, wattwise tune with its defaults (``wattwise.tuning.default_sampler`` and
   ``default_pruner``, energy as fidelity; see benchmarks/tune for the benchmark that chose them).

All run through ``wattwise.tune`` with the inline executor, so every trial is metered the
same way (a run in a private ledger; ``NopPruner`` for the first two). For each: best
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
from wattwise.tuning import default_sampler  # noqa: E402

AUGMENT = 1
EPOCHS = 27  # 3**3: rungs of successive halving at 1, 3, 9 and 27 steps
THRESHOLD_POINTS = 0.5


def objective(trial: Any) -> float:
    """The digits MLP on the augmented data (see examples/tune_digits.py), 27 epochs."""
    torch.set_num_threads(1)
    params = {
        "lr": trial.suggest_float("lr", 1e-4, 3e-1, log=True),
        "width": trial.suggest_int("width", 16, 512, log=True),
        "weight_decay": trial.suggest_float("weight_decay", 1e-6, 1e-2, log=True),
        "epochs": EPOCHS,
    }
    return tune_digits.train(params, trial, augment=AUGMENT)


def search(
    label: str, sampler: Any, pruner: Any, *, n_trials: int, store: str, fidelity: bool | None
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
        tune_digits.train({**params, "epochs": EPOCHS}, None, augment=AUGMENT)
    return run.result.energy_j


def main(argv: list[str] | None = None) -> int:
    """Run the four searches and print the comparison."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-trials", type=int, default=24)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--store", help="ledger file (default: a temporary one)")
    args = parser.parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    store = args.store or os.path.join(tempfile.mkdtemp(prefix="wattwise-bench-"), "ledger.db")
    tune_digits.load_data(AUGMENT, 0)
    n, seed = args.n_trials, args.seed
    samplers = optuna.samplers
    print(f"Searching {n} trials x 4 searches (seed {seed}); ledger {store}", flush=True)
    runs = [
        search("random-full", samplers.RandomSampler(seed=seed), optuna.pruners.NopPruner(),
               n_trials=n, store=store, fidelity=False),
        search("tpe-no-pruning", samplers.TPESampler(seed=seed), optuna.pruners.NopPruner(),
               n_trials=n, store=store, fidelity=False),
        search("wattwise-sh-energy", samplers.RandomSampler(seed=seed),
               optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3),
               n_trials=n, store=store, fidelity=True),
        search("wattwise-defaults", default_sampler(seed), None, n_trials=n,
               store=store, fidelity=None),
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
        f"{'search':<26}{'best acc':>9}{'energy J':>11}{'J to thr.':>11}"
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
    rnd, tpe, ww, default = runs
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
    same = [(a, b) for a, b in zip(rnd["result"].trials, ww["result"].trials, strict=True)
            if a.params == b.params]  # fmt: skip
    if len(same) == len(rnd["result"].trials):
        measured = sum(a.energy_j - b.energy_j for a, b in same)
        print(
            f"Pruning avoided {measured:.1f} J, measured: the same configurations trained to "
            f"the end in the random search; wattwise's own estimate was "
            f"{ww['result'].avoided_energy_j:.1f} J."
        )
    else:
        print(f"Pruning avoided (wattwise's estimate): {ww['result'].avoided_energy_j:.1f} J.")
    d = default["result"]
    print(
        f"Reference, wattwise defaults (TPE, successive halving on energy): "
        f"{rnd['result'].spent.energy_j / d.spent.energy_j:.2f}x less energy than random "
        f"search, best accuracy {(d.best_value - rnd['result'].best_value) * 100:+.2f} points "
        f"against it, search / final model {d.spent.energy_j / default['final_j']:.2f}."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

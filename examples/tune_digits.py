"""Energy-aware hyperparameter search on the digits data, with a budget: the demo's tuning step.

A small PyTorch MLP on scikit-learn's shipped digits (offline). The search space covers the
learning rate, the width, the weight decay and the number of epochs (up to 40). The search
uses wattwise's defaults, chosen on ``benchmarks/tune`` (docs/explanation/tuning-benchmark.md):
Optuna's TPE sampler (its first 10 trials random) and asynchronous successive halving stops poor
trials early, with *energy* as the fidelity axis: trials are compared at equal joules spent,
not at equal epochs. The study stops when
every trial ran or the energy budget is spent, whichever comes first. It prints the best
model, the accuracy-versus-energy Pareto front and the project footprint, all from the
ledger.

    python examples/tune_digits.py [--n-trials 40] [--budget-kwh 0.0005]

Also usable as ``wattwise tune examples/tune_digits.py:objective --direction maximize``.
"""

from __future__ import annotations

import argparse
import functools
import sys
from typing import Any

import optuna
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn

#: Largest number of epochs a trial may train for.
MAX_EPOCHS = 40


@functools.lru_cache(maxsize=4)
def load_data(augment: int = 0, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """Digits (8x8, 10 classes), split 70/30 by image, scaled to [0, 1].

    Args:
        augment: 0 for the 1,797 images as shipped; 1 to add every one-pixel shift of
            each image (x9 samples), a heavier task for benchmarks.
        seed: Seed of the split.

    Returns:
        ``x_train, x_val, y_train, y_val``.
    """
    digits = load_digits()
    images = torch.tensor(digits.images, dtype=torch.float32) / 16.0
    labels = torch.tensor(digits.target, dtype=torch.long)
    idx = torch.arange(len(labels))
    tr, va = train_test_split(idx.numpy(), test_size=0.3, random_state=seed, stratify=labels)

    def expand(ids: Any) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = images[ids], labels[ids]
        if not augment:
            return x.reshape(len(ids), 64), y
        padded = nn.functional.pad(x, (1, 1, 1, 1))
        shifted = [
            padded[:, 1 + dy : 9 + dy, 1 + dx : 9 + dx] for dy in (-1, 0, 1) for dx in (-1, 0, 1)
        ]
        xs = torch.cat(shifted).reshape(-1, 64)
        return xs, y.repeat(len(shifted))

    x_tr, y_tr = expand(tr)
    x_va, y_va = expand(va)
    return x_tr, x_va, y_tr, y_va


def make_model(width: int) -> nn.Module:
    """A two-hidden-layer MLP."""
    return nn.Sequential(
        nn.Linear(64, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(), nn.Linear(width, 10)
    )


def train(
    params: dict[str, Any],
    trial: Any = None,
    *,
    augment: int = 0,
    seed: int = 0,
) -> float:
    """Train with ``params``; report the validation accuracy each epoch to ``trial``.

    Returns:
        The validation accuracy after the last epoch, in [0, 1].
    """
    torch.manual_seed(seed)
    x_tr, x_va, y_tr, y_va = load_data(augment, seed)
    model = make_model(int(params["width"]))
    opt = torch.optim.Adam(
        model.parameters(), lr=params["lr"], weight_decay=params["weight_decay"]
    )
    loss_fn = nn.CrossEntropyLoss()
    acc = 0.0
    for epoch in range(int(params["epochs"])):
        perm = torch.randperm(len(x_tr))
        for i in range(0, len(x_tr), 64):
            batch = perm[i : i + 64]
            opt.zero_grad()
            loss_fn(model(x_tr[batch]), y_tr[batch]).backward()
            opt.step()
        with torch.no_grad():
            acc = float((model(x_va).argmax(dim=1) == y_va).float().mean())
        if trial is not None:
            trial.report(acc, epoch)
            if trial.should_prune():
                raise optuna.TrialPruned()
    return acc


def suggest(trial: Any) -> dict[str, Any]:
    """The search space."""
    return {
        "lr": trial.suggest_float("lr", 1e-4, 3e-1, log=True),
        "width": trial.suggest_int("width", 16, 512, log=True),
        "weight_decay": trial.suggest_float("weight_decay", 1e-6, 1e-2, log=True),
        "epochs": trial.suggest_int("epochs", 5, MAX_EPOCHS),
    }


def objective(trial: Any) -> float:
    """Validation accuracy of the MLP trained with the trial's parameters (maximise)."""
    torch.set_num_threads(1)
    params = suggest(trial)
    if hasattr(trial, "set_max_step"):  # wattwise's trial: sharpens the avoided-energy estimate
        trial.set_max_step(params["epochs"] - 1)
    return train(params, trial)


def main(argv: list[str] | None = None) -> int:
    """Run the search and print the best model, the Pareto front and the footprint."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-trials", type=int, default=40)
    parser.add_argument("--budget-kwh", type=float, default=0.0005)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)

    import wattwise
    from wattwise.cli import _format as fmt
    from wattwise.store import open_store, project_footprint

    result = wattwise.tune(
        objective, n_trials=args.n_trials, budget_kwh=args.budget_kwh, seed=args.seed,
        direction="maximize", study_name="digits-mlp-search",
        tags=["demo"], progress=False if args.no_progress else None,
        run_options={"emit_warnings": False},
    )  # fmt: skip
    data = result.summary
    counts = data["n_trials"]
    print(
        f"Study {result.study_id[:8]}: {counts['total']} trials ({counts['complete']} complete, "
        f"{counts['pruned']} pruned, {counts['fail']} failed); stopped: {result.stop_reason}."
    )
    budget = "" if result.budget.energy_j is None else f" of {fmt.energy(result.budget.energy_j)}"
    print(
        f"Spent {fmt.energy(result.spent.energy_j)}{budget}, {fmt.carbon(result.spent.co2e_g)}, "
        f"{fmt.duration(result.spent.duration_s)} (driver "
        f"{fmt.energy(data['spent']['driver_energy_j'])}); pruning avoided about "
        f"{fmt.energy(result.avoided_energy_j)} (estimated)."
    )
    if result.best is not None:
        best = result.best
        print(
            f"Best model: trial #{best.number}, validation accuracy {best.value:.4f}, "
            f"lr={best.params['lr']:.3g}, width={best.params['width']}, "
            f"weight_decay={best.params['weight_decay']:.2g}, epochs={best.params['epochs']}; "
            f"it cost {fmt.energy(best.energy_j)}."
        )
    print("Accuracy-versus-energy Pareto front (every trial, pruned ones at their last report):")
    rows = [
        [f"#{t.number}", t.state, f"{t.value:.4f}", fmt.energy(t.energy_j),
         str(t.params.get("width")), str(t.last_step)]
        for t in result.pareto_front
    ]  # fmt: skip
    print(fmt.table(["TRIAL", "STATE", "ACCURACY", "ENERGY", "WIDTH", "LAST EPOCH"], rows))
    store = open_store()
    try:
        fp = project_footprint(store.list_runs())
    finally:
        store.close()
    print(
        f"Project footprint: {fp.total.runs} runs, {fmt.energy(fp.total.energy_j)}, "
        f"{fmt.carbon(fp.total.co2e_g)} (trials and the study driver counted once each)."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

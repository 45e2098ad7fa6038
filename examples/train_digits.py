"""Train a small PyTorch network on scikit-learn's shipped digits data set.

Runs offline (the data ships with scikit-learn). Under ``wattwise run`` the validation
accuracy of each epoch is logged into the run; on its own it just trains.

    wattwise run --name digits-mlp -- python examples/train_digits.py --epochs 30
"""

from __future__ import annotations

import argparse
import os

import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn


def load_data(seed: int) -> tuple[torch.Tensor, ...]:
    """Digits (8x8 images, 10 classes) split 80/20, scaled to [0, 1]."""
    digits = load_digits()
    x = torch.tensor(digits.data, dtype=torch.float32) / 16.0
    y = torch.tensor(digits.target, dtype=torch.long)
    x_tr, x_va, y_tr, y_va = train_test_split(x, y, test_size=0.2, random_state=seed, stratify=y)
    return x_tr, x_va, y_tr, y_va


def make_model(width: int) -> nn.Module:
    """A two-hidden-layer MLP."""
    return nn.Sequential(
        nn.Linear(64, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(), nn.Linear(width, 10)
    )


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Share of correct predictions."""
    with torch.no_grad():
        return float((model(x).argmax(dim=1) == y).float().mean())


def train(epochs: int, lr: float, width: int, weight_decay: float, seed: int) -> float:
    """Train and return the final validation accuracy."""
    torch.manual_seed(seed)
    x_tr, x_va, y_tr, y_va = load_data(seed)
    model = make_model(width)
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    loss_fn = nn.CrossEntropyLoss()
    tracked = "WATTWISE_RUN_ID" in os.environ
    acc = 0.0
    for epoch in range(epochs):
        perm = torch.randperm(len(x_tr))
        for i in range(0, len(x_tr), 64):
            idx = perm[i : i + 64]
            opt.zero_grad()
            loss = loss_fn(model(x_tr[idx]), y_tr[idx])
            loss.backward()
            opt.step()
        acc = accuracy(model, x_va, y_va)
        if tracked:
            import wattwise

            wattwise.log(step=epoch, val_acc=acc, loss=loss.item())
    return acc


def main() -> None:
    """Parse arguments, train, print the accuracy."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--weight-decay", type=float, default=1e-4)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(max(1, (os.cpu_count() or 1)))
    acc = train(args.epochs, args.lr, args.width, args.weight_decay, args.seed)
    print(f"validation accuracy: {acc:.4f}")


if __name__ == "__main__":
    main()

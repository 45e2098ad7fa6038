"""The benchmark's workloads: small trainings where hyperparameters matter, offline.

Each workload trains for ``MAX_STEPS`` steps (a step is a fixed number of minibatches or
boosting rounds, then a validation) and calls ``report(value, step)`` after each; ``report``
may raise (``optuna.TrialPruned``) to stop the training. Data ship with the libraries
(scikit-learn's digits, the Python standard library's own source) or are generated
(scikit-learn's ``make_classification``), so nothing is downloaded.

* ``mlp-digits``: an MLP on digits with every one-pixel shift and pixel noise (accuracy).
* ``cnn-digits``: a two-layer CNN on the same images (accuracy); its cost per step depends
  on its width, so configurations differ in cost.
* ``charlm-stdlib``: a character-level language model (8-character context, embedding +
  MLP) on the source of the standard library (validation cross-entropy, nats/char).
* ``gbm-tabular``: histogram gradient boosting on a generated 3-class tabular problem
  (accuracy), the boosting rounds as steps.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import sysconfig
from collections.abc import Callable
from pathlib import Path
from typing import Any

#: Steps of a full training (3**3: rungs of successive halving at 1, 3, 9 and 27).
MAX_STEPS = 27

Report = Callable[[float, int], None]


@dataclasses.dataclass(frozen=True)
class Param:
    """One hyperparameter: float or int in [low, high], optionally on a log scale."""

    name: str
    kind: str  # "float" | "int"
    low: float
    high: float
    log: bool = False


@dataclasses.dataclass(frozen=True)
class Workload:
    """A training whose quality depends on its hyperparameters."""

    name: str
    direction: str  # "maximize" (accuracy) | "minimize" (loss)
    metric: str
    space: tuple[Param, ...]
    train: Callable[[dict[str, Any], int, Report | None], float]
    data: str
    load: Callable[[], Any]

    def suggest(self, trial: Any) -> dict[str, Any]:
        """The parameters, from an Optuna (or wattwise) trial."""
        params: dict[str, Any] = {}
        for p in self.space:
            if p.kind == "int":
                params[p.name] = trial.suggest_int(p.name, int(p.low), int(p.high), log=p.log)
            else:
                params[p.name] = trial.suggest_float(p.name, p.low, p.high, log=p.log)
        return params

    def ray_space(self) -> dict[str, Any]:
        """The same space for Ray Tune."""
        from ray import tune

        space: dict[str, Any] = {}
        for p in self.space:
            if p.kind == "int":
                space[p.name] = (
                    tune.lograndint(int(p.low), int(p.high) + 1)
                    if p.log
                    else tune.randint(int(p.low), int(p.high) + 1)
                )
            else:
                space[p.name] = (
                    tune.loguniform(p.low, p.high) if p.log else tune.uniform(p.low, p.high)
                )
        return space

    def threshold(self, best: float) -> float:
        """The target: within 0.5 points (accuracy) or 2 % (loss) of ``best``."""
        if self.direction == "maximize":
            return best - 0.005
        return best * 1.02

    def reaches(self, value: float | None, target: float) -> bool:
        """Whether ``value`` is at least as good as ``target``."""
        if value is None or not math.isfinite(value):
            return False
        return value >= target if self.direction == "maximize" else value <= target

    def better(self, a: float, b: float) -> bool:
        """Whether ``a`` is strictly better than ``b``."""
        return a > b if self.direction == "maximize" else a < b


# -- digits, augmented --------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _digits() -> tuple[Any, Any, Any, Any]:
    """Digits with every one-pixel shift and Gaussian pixel noise; split by original image."""
    import torch
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    from torch import nn

    digits = load_digits()
    images = torch.tensor(digits.images, dtype=torch.float32) / 16.0
    labels = torch.tensor(digits.target, dtype=torch.long)
    idx = torch.arange(len(labels)).numpy()
    tr, va = train_test_split(idx, test_size=0.3, random_state=0, stratify=labels.numpy())
    gen = torch.Generator().manual_seed(0)

    def expand(ids: Any) -> tuple[Any, Any]:
        x, y = images[ids], labels[ids]
        padded = nn.functional.pad(x, (1, 1, 1, 1))
        shifted = [
            padded[:, 1 + dy : 9 + dy, 1 + dx : 9 + dx] for dy in (-1, 0, 1) for dx in (-1, 0, 1)
        ]
        xs = torch.cat(shifted)
        xs = (xs + 0.2 * torch.randn(xs.shape, generator=gen)).clamp(0.0, 1.0)
        return xs.unsqueeze(1), y.repeat(len(shifted))

    x_tr, y_tr = expand(tr)
    x_va, y_va = expand(va)
    keep = torch.randperm(len(y_va), generator=gen)[:1000]
    return x_tr, y_tr, x_va[keep], y_va[keep]


def _train_torch(
    model: Any,
    params: dict[str, Any],
    seed: int,
    report: Report | None,
    data: tuple[Any, Any, Any, Any],
    *,
    batches: int,
    batch_size: int,
    loss_value: bool = False,
) -> float:
    """Adam, ``MAX_STEPS`` steps of ``batches`` minibatches, validation after each."""
    import torch
    from torch import nn

    x_tr, y_tr, x_va, y_va = data
    opt = torch.optim.Adam(model.parameters(), lr=params["lr"], weight_decay=params["wd"])
    loss_fn = nn.CrossEntropyLoss()
    gen = torch.Generator().manual_seed(seed)
    value = math.nan
    for step in range(MAX_STEPS):
        model.train()
        for _ in range(batches):
            batch = torch.randint(len(y_tr), (batch_size,), generator=gen)
            opt.zero_grad()
            loss = loss_fn(model(x_tr[batch]), y_tr[batch])
            if not torch.isfinite(loss):
                break
            loss.backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            out = model(x_va)
            if loss_value:
                value = float(loss_fn(out, y_va))
                if not math.isfinite(value):
                    value = 10.0  # diverged: worse than any model that learned
            else:
                value = float((out.argmax(dim=1) == y_va).float().mean())
        if report is not None:
            report(value, step)
    return value


def train_mlp(params: dict[str, Any], seed: int, report: Report | None) -> float:
    """Validation accuracy of an MLP on the augmented digits."""
    import torch
    from torch import nn

    torch.set_num_threads(1)
    torch.manual_seed(seed)
    width = int(params["width"])
    model = nn.Sequential(
        nn.Flatten(), nn.Linear(64, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(),
        nn.Linear(width, 10),
    )  # fmt: skip
    return _train_torch(model, params, seed, report, _digits(), batches=10, batch_size=64)


def train_cnn(params: dict[str, Any], seed: int, report: Report | None) -> float:
    """Validation accuracy of a small CNN on the augmented digits."""
    import torch
    from torch import nn

    torch.set_num_threads(1)
    torch.manual_seed(seed)
    c = int(params["channels"])
    model = nn.Sequential(
        nn.Conv2d(1, c, 3, padding=1), nn.ReLU(), nn.Conv2d(c, 2 * c, 3, padding=1), nn.ReLU(),
        nn.MaxPool2d(2), nn.Flatten(), nn.Dropout(params["dropout"]),
        nn.Linear(2 * c * 16, 10),
    )  # fmt: skip
    return _train_torch(model, params, seed, report, _digits(), batches=6, batch_size=32)


# -- characters of the standard library ------------------------------------------------------

#: Files of the standard library read, in this order, for the language model's text.
STDLIB_FILES = (
    "textwrap.py", "argparse.py", "json/decoder.py", "json/encoder.py", "csv.py",
    "string.py", "fractions.py", "heapq.py", "bisect.py", "shlex.py", "calendar.py",
)  # fmt: skip
CONTEXT = 8


@functools.lru_cache(maxsize=1)
def _stdlib_text() -> tuple[Any, Any, Any, Any]:
    """(context, next char) pairs from the standard library's source; 90/10 split by position."""
    import torch

    root = Path(sysconfig.get_paths()["stdlib"])
    text = "".join((root / f).read_text(encoding="utf-8") for f in STDLIB_FILES)
    codes = torch.tensor([min(max(ord(ch), 31), 127) - 31 for ch in text], dtype=torch.long)
    windows = codes.unfold(0, CONTEXT + 1, 1)
    x, y = windows[:, :CONTEXT], windows[:, CONTEXT]
    cut = int(0.9 * len(y))
    gen = torch.Generator().manual_seed(0)
    val = cut + torch.randperm(len(y) - cut, generator=gen)[:2000]
    return x[:cut], y[:cut], x[val], y[val]


def train_charlm(params: dict[str, Any], seed: int, report: Report | None) -> float:
    """Validation cross-entropy (nats per character) of an embedding + MLP char model."""
    import torch
    from torch import nn

    torch.set_num_threads(1)
    torch.manual_seed(seed)
    vocab, emb, hidden = 97, int(params["embed"]), int(params["hidden"])
    model = nn.Sequential(
        nn.Embedding(vocab, emb), nn.Flatten(), nn.Linear(CONTEXT * emb, hidden), nn.Tanh(),
        nn.Linear(hidden, vocab),
    )  # fmt: skip
    return _train_torch(
        model, params, seed, report, _stdlib_text(), batches=10, batch_size=128,
        loss_value=True,
    )  # fmt: skip


# -- tabular: gradient boosting on generated data -------------------------------------------


@functools.lru_cache(maxsize=1)
def _tabular() -> tuple[Any, Any, Any, Any]:
    from sklearn.datasets import make_classification
    from sklearn.model_selection import train_test_split

    x, y = make_classification(
        n_samples=3000, n_features=20, n_informative=8, n_redundant=4, n_classes=3,
        n_clusters_per_class=2, flip_y=0.03, class_sep=0.8, random_state=0,
    )  # fmt: skip
    x_tr, x_va, y_tr, y_va = train_test_split(x, y, test_size=0.3, random_state=0, stratify=y)
    return x_tr, y_tr, x_va, y_va


def train_gbm(params: dict[str, Any], seed: int, report: Report | None) -> float:
    """Validation accuracy of histogram gradient boosting, 2 rounds per step."""
    import warnings

    from sklearn.ensemble import HistGradientBoostingClassifier
    from threadpoolctl import threadpool_limits

    x_tr, y_tr, x_va, y_va = _tabular()
    model = HistGradientBoostingClassifier(
        learning_rate=params["lr"], max_leaf_nodes=int(params["leaves"]),
        min_samples_leaf=int(params["min_leaf"]), l2_regularization=params["l2"],
        max_iter=0, early_stopping=False, warm_start=True, random_state=seed,
    )  # fmt: skip
    value = math.nan
    with threadpool_limits(1), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for step in range(MAX_STEPS):
            model.set_params(max_iter=2 * (step + 1))
            model.fit(x_tr, y_tr)
            value = float(model.score(x_va, y_va))
            if report is not None:
                report(value, step)
    return value


WORKLOADS: dict[str, Workload] = {
    w.name: w
    for w in (
        Workload(
            "mlp-digits", "maximize", "accuracy",
            (Param("lr", "float", 1e-5, 1.0, log=True), Param("width", "int", 8, 256, log=True),
             Param("wd", "float", 1e-6, 1e-1, log=True)),
            train_mlp, "scikit-learn digits, 9 shifts + pixel noise (11k train, 1k val)", _digits,
        ),
        Workload(
            "cnn-digits", "maximize", "accuracy",
            (Param("lr", "float", 1e-5, 1.0, log=True), Param("channels", "int", 2, 8, log=True),
             Param("dropout", "float", 0.0, 0.6), Param("wd", "float", 1e-6, 1e-1, log=True)),
            train_cnn, "the same digits, 8x8 images", _digits,
        ),
        Workload(
            "charlm-stdlib", "minimize", "val loss (nats/char)",
            (Param("lr", "float", 1e-5, 1.0, log=True), Param("embed", "int", 2, 32, log=True),
             Param("hidden", "int", 8, 256, log=True), Param("wd", "float", 1e-7, 1e-1, log=True)),
            train_charlm, f"{len(STDLIB_FILES)} files of the Python standard library's source",
            _stdlib_text,
        ),
        Workload(
            "gbm-tabular", "maximize", "accuracy",
            (Param("lr", "float", 1e-3, 1.0, log=True), Param("leaves", "int", 2, 64, log=True),
             Param("min_leaf", "int", 2, 200, log=True),
             Param("l2", "float", 1e-4, 10.0, log=True)),
            train_gbm, "scikit-learn make_classification: 3,000 x 20, 3 classes (generated)",
            _tabular,
        ),
    )
}  # fmt: skip

from __future__ import annotations

import os
from typing import Any

import pytest

import wattwise
from wattwise.store import RunStatus, open_store
from wattwise.testing import FakeMeter

# Keras reads its backend once, at its first import: these tests train with PyTorch's.
os.environ.setdefault("KERAS_BACKEND", "torch")
torch = pytest.importorskip("torch", reason="PyTorch is not installed (pip install torch)")
keras = pytest.importorskip(
    "keras", reason="Keras 3 is not installed (pip install 'wattwise[integrations]')"
)

pytestmark = pytest.mark.torch


def _model() -> Any:
    """A tiny classifier built from its layers (no download)."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(4, activation="relu"),
                              keras.layers.Dense(2, activation="softmax")])  # fmt: skip
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def _data(n: int = 64) -> tuple[Any, Any]:
    import numpy as np

    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 8)).astype("float32")
    return x, (x[:, 0] > 0).astype("int64")


def test_keras_runs_on_the_torch_backend() -> None:
    assert keras.backend.backend() == "torch"


def test_keras_callback_logs_epoch_metrics_energy_and_flops() -> None:
    from wattwise.integrations.keras import WattwiseCallback

    meter = FakeMeter({"cpu:0": 20.0}, method="model", band_fraction=0.4)
    x, y = _data()
    with wattwise.track("keras-fit", meters=[meter], interval_s=0.05) as run:
        history = _model().fit(x, y, batch_size=16, epochs=2, validation_split=0.25,
                               verbose=0, callbacks=[WattwiseCallback(log_every_n_steps=2)])
    points = open_store().metrics(run.id)
    pairs = [(step, key) for step, key, _v, _t in points]
    assert len(pairs) == len(set(pairs))
    series: dict[str, dict[int, float]] = {}
    for step, key, value, _t in points:
        series.setdefault(key, {})[step] = value
    # 48 training examples, batch 16: 3 batches per epoch; epoch ends at steps 3 and 6
    assert series["loss"] == {3: pytest.approx(history.history["loss"][0]),
                              6: pytest.approx(history.history["loss"][1])}  # fmt: skip
    assert sorted(series["val_accuracy"]) == [3, 6]
    assert series["wattwise/epoch"] == {3: 0.0, 6: 1.0}
    assert all(v > 0 for v in series["wattwise/epoch_energy_j"].values())
    energy = series["wattwise/energy_j"]
    assert sorted(energy) == [2, 3, 4, 6]  # every 2nd batch, and an epoch end between logs
    assert [energy[s] for s in sorted(energy)] == sorted(energy.values())
    assert energy[6] <= run.result.energy_j
    flops = open_store().get_run(run.id).record["flops"]
    # Dense(8->4) and Dense(4->2) on 16 examples: forward 2*16*(8*4 + 4*2) = 1280 FLOPs
    assert flops["steps"] == 6 and flops["source"] == "keras"
    assert flops["flops_per_step"] >= 1280 and flops["framework"].startswith("keras")


def test_keras_callback_starts_and_finishes_its_own_run() -> None:
    from wattwise.integrations.keras import WattwiseCallback

    x, y = _data(32)
    _model().fit(x, y, batch_size=16, epochs=1, verbose=0,
                 callbacks=[WattwiseCallback(name="own-keras")])  # fmt: skip
    (run,) = open_store().list_runs()
    assert run.name == "own-keras" and run.status is RunStatus.FINISHED
    assert run.params == {"epochs": 1, "steps": 2} and run.tags == ["keras"]
    assert run.energy_j >= 0 and wattwise.tracking.current_run() is None


def test_keras_callback_validates() -> None:
    from wattwise.exceptions import InvalidParameterError
    from wattwise.integrations.keras import WattwiseCallback

    with pytest.raises(InvalidParameterError, match="'log_every_n_steps' parameter must be"):
        WattwiseCallback(log_every_n_steps=0)

from __future__ import annotations

import os
from typing import Any

import pytest
from failure_support import Failing, ended_failed, innermost

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


@pytest.fixture
def model_meters(monkeypatch: pytest.MonkeyPatch) -> None:
    """The runs the callbacks start measure with the model meters, which every machine has:
    DRAM's is a constant power, so even a run of a few milliseconds has energy > 0."""
    monkeypatch.setenv("WATTWISE_METERS", "cpu-model,dram-model")


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


class Explodes(keras.layers.Layer):  # type: ignore[misc]
    """Identity; on real (not symbolic) batches, in training or in evaluation, counts its
    calls and raises at the n-th."""

    def __init__(self, failing: Failing, *, training: bool, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.failing = failing
        self.in_training = training

    def call(self, x: Any, training: bool = False) -> Any:
        if str(getattr(x, "device", "")) != "meta" and bool(training) == self.in_training:
            self.failing.maybe_raise()
        return x


def _exploding_model(failing: Failing, *, training: bool) -> Any:
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(4, activation="relu"),
                              Explodes(failing, training=training),
                              keras.layers.Dense(2, activation="softmax")])  # fmt: skip
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


@pytest.fixture
def traceback_filtering(request: pytest.FixtureRequest) -> Any:
    """Keras's traceback filtering on or off for the test (on: Keras re-raises an error of
    a layer as a new exception with the layer's arguments added, wattwise or not)."""
    was = keras.config.is_traceback_filtering_enabled()
    if request.param:
        keras.config.enable_traceback_filtering()
    else:
        keras.config.disable_traceback_filtering()
    yield request.param
    if was:
        keras.config.enable_traceback_filtering()
    else:
        keras.config.disable_traceback_filtering()


@pytest.mark.usefixtures("model_meters")
@pytest.mark.parametrize(
    ("where", "at", "training", "traceback_filtering"),
    [("a training step", 5, True, False), ("the validation", 2, False, False),
     ("a training step", 5, True, True)],
    indirect=["traceback_filtering"],
)  # fmt: skip
def test_a_fit_that_raises_ends_the_callback_run_failed_at_once(
    where: str, at: int, training: bool, traceback_filtering: bool
) -> None:
    from wattwise.integrations.keras import FAILURE_PATHS, WattwiseCallback

    failing = Failing(at, where)
    model = _exploding_model(failing, training=training)
    callback = WattwiseCallback(name="keras-fails")
    x, y = _data()
    # 48 training examples a fit, batch 16: 3 steps an epoch; validation at each epoch end
    with pytest.raises(FloatingPointError) as caught:
        model.fit(x, y, batch_size=16, epochs=3, validation_split=0.25, verbose=0,
                  callbacks=[callback])  # fmt: skip
    if traceback_filtering:  # Keras's own copy, as without wattwise
        assert caught.value is not failing.raised[0] and failing.message in str(caught.value)
        assert str(caught.value).startswith("Exception encountered when calling Explodes")
    else:  # the user's own exception, raised where the user raised it
        assert caught.value is failing.raised[0] and innermost(caught.value) == "maybe_raise"
    # the process lives on (a notebook): the run has ended already, failed, with its energy
    run = ended_failed("keras-fails")
    assert failing.message in run.record["error"]
    assert not set(FAILURE_PATHS) & set(vars(model)) - {"train_function"}
    assert getattr(model.train_function, "__wrapped__", None) is None  # Keras's own again
    # a later fit, nothing failing now, is a run of its own and trains to the end
    failing.armed = False
    history = model.fit(x, y, batch_size=16, epochs=2, validation_split=0.25, verbose=0,
                        callbacks=[callback])  # fmt: skip
    assert len(history.history["loss"]) == 2
    (again,) = [r for r in open_store().list_runs() if r.id != run.id]
    assert again.status is RunStatus.FINISHED and again.record["flops"]["steps"] == 6
    assert open_store().get_run(run.id).status is RunStatus.FAILED


class FailingBatches(keras.utils.PyDataset):  # type: ignore[misc]
    """The input data: 4 batches of 16, the n-th read raising."""

    def __init__(self, failing: Failing) -> None:
        super().__init__()
        self.failing = failing
        self.x, self.y = _data()

    def __len__(self) -> int:
        return 4

    def __getitem__(self, i: int) -> tuple[Any, Any]:
        self.failing.maybe_raise()
        return self.x[i * 16:(i + 1) * 16], self.y[i * 16:(i + 1) * 16]


@pytest.mark.usefixtures("model_meters")
def test_a_failure_in_the_input_data_ends_the_run_at_the_next_fit() -> None:
    """With PyTorch the data is read outside the step: the callback does not see it fail."""
    from wattwise.integrations.keras import UNSEEN, WattwiseCallback

    failing = Failing(3, "the data")
    data = FailingBatches(failing)
    model = _model()
    callback = WattwiseCallback(name="keras-data")
    with pytest.raises(FloatingPointError, match="the data blew up"):
        model.fit(data, epochs=1, verbose=0, callbacks=[callback])
    (run,) = open_store().list_runs()
    assert run.status is RunStatus.RUNNING  # open: until the exit, or...
    failing.armed = False
    model.fit(data, epochs=1, verbose=0, callbacks=[callback])  # ... the next fit
    first = open_store().get_run(run.id)
    assert first.status is RunStatus.FAILED and first.record["error"] == UNSEEN
    assert first.energy_j > 0
    (again,) = [r for r in open_store().list_runs() if r.id != run.id]
    assert again.status is RunStatus.FINISHED and again.record["flops"]["steps"] == 4


def test_a_failure_inside_track_ends_its_run_at_once_whatever_failed() -> None:
    from wattwise.integrations.keras import WattwiseCallback

    failing = Failing(3, "the data")
    with pytest.raises(FloatingPointError), wattwise.track("keras-in-track") as run:
        _model().fit(FailingBatches(failing), epochs=1, verbose=0,
                     callbacks=[WattwiseCallback()])  # fmt: skip
    stored = open_store().get_run(run.id)
    assert stored.status is RunStatus.FAILED and "the data blew up" in stored.record["error"]


def test_the_callback_changes_nothing_in_a_fit_that_succeeds() -> None:
    from wattwise.integrations.keras import WattwiseCallback

    x, y = _data()
    plain = _model()
    expected = plain.fit(x, y, batch_size=16, epochs=2, validation_split=0.25, verbose=0,
                         shuffle=False).history  # fmt: skip
    watched = _model()
    got = watched.fit(x, y, batch_size=16, epochs=2, validation_split=0.25, verbose=0,
                      shuffle=False, callbacks=[WattwiseCallback(name="keras-same")]).history
    assert got == expected
    for mine, theirs in zip(watched.weights, plain.weights, strict=True):
        assert torch.equal(mine.value, theirs.value)  # bit for bit
    (run,) = open_store().list_runs()
    assert run.status is RunStatus.FINISHED and "evaluate" not in vars(watched)

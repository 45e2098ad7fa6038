"""Keras 3 callback: metrics, energy and FLOPs of ``model.fit``, into a wattwise run.

    import keras
    import wattwise
    from wattwise.integrations.keras import WattwiseCallback

    with wattwise.track("fit"):
        model.fit(x, y, epochs=5, callbacks=[WattwiseCallback()])

Works with every Keras 3 backend (JAX, TensorFlow, PyTorch). Without an active run the
callback starts one at ``on_train_begin`` and finishes it at ``on_train_end``.

Keras calls no hook when ``fit`` raises, so at ``on_train_begin`` the callback wraps, on the
model instance, the methods a failure passes through: ``train_function`` (one training
step: forward, loss, backward, optimiser, metrics; with JAX and TensorFlow it also reads
the batch) and ``evaluate`` (the validation at epoch ends); ``on_train_end`` puts them back.
A failure there ends a run the callback started ``failed`` at once, with the energy measured
and the error (in a notebook too), and the exception goes on unchanged: the same object,
its traceback with a frame more (the wrapper's); the end of the data, which ``fit``
catches, is no failure. A failure elsewhere (with PyTorch, the
input data, read outside the step; another callback) is not seen: such a run ends
``failed`` at the next ``fit`` with this callback, or at the process's exit; inside
``wattwise.track`` the block ends its run failed at once, whatever failed.

What goes into the run, at the step count so far (training batches over all epochs):

* at each epoch end, Keras's epoch logs (``loss``, ``accuracy``, ``val_loss``...; a ``/``
  in a name becomes ``_``) and ours: the epoch's energy, carbon and time;
* every ``log_every_n_steps`` batches, ours: the energy and carbon so far, the energy per
  batch and the power since the previous log.

Ours are named under ``wattwise/``, so they cannot clash with the model's metrics. With
the PyTorch backend, FLOPs are counted by ``torch.utils.flop_counter`` on the first batch
(or every n-th with ``flops_every_n_steps``) and extrapolated per batch.
"""

from __future__ import annotations

from typing import Any

import keras

from wattwise.integrations._guard import Watching, never_raise
from wattwise.integrations._recorder import StepRecorder
from wattwise.tracking import Run

#: The model's methods wrapped during ``fit`` to see it fail (see the module).
FAILURE_PATHS = ("train_function", "evaluate")

#: Why a run still open at the next ``fit`` ended: the previous ``fit`` raised where the
#: callback could not see it.
UNSEEN = (
    "the previous fit() raised where the callback could not see it (the input data or "
    "another callback; its error is not known); the run was ended failed when fit() was "
    "called again"
)


class WattwiseCallback(keras.callbacks.Callback):  # type: ignore[misc]
    """Record a Keras ``fit`` into the current wattwise run.

    Args:
        run: The run to record into (default: the current run, else a new one).
        name: Name of the run started when there is none.
        count_flops: Count FLOPs with ``torch.utils.flop_counter`` (PyTorch backend only).
        flops_every_n_steps: Measure every n-th batch (0: the first batch only).
        log_every_n_steps: Log the energy every n training batches; epoch ends always log.
    """

    def __init__(
        self,
        *,
        run: Run | None = None,
        name: str = "keras-fit",
        count_flops: bool = True,
        flops_every_n_steps: int = 0,
        log_every_n_steps: int = 50,
    ) -> None:
        from wattwise.exceptions import InvalidParameterError

        super().__init__()
        if isinstance(log_every_n_steps, bool) or not isinstance(log_every_n_steps, int) or (
            log_every_n_steps < 1
        ):
            msg = (
                "The 'log_every_n_steps' parameter must be an int >= 1. Got "
                f"{log_every_n_steps!r} instead."
            )
            raise InvalidParameterError(msg)
        torch_backend = keras.backend.backend() == "torch"
        self.recorder = StepRecorder(
            run=run, name=name, count_flops=count_flops and torch_backend,
            flops_every_n_steps=flops_every_n_steps, source="keras",
        )  # fmt: skip
        self._log_every = log_every_n_steps
        self._watching = Watching(self, self._failed, control_flow=_end_of_data)

    @never_raise
    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        """Find or start the run (its params: the fit's epochs and steps); watch the fit."""
        self._watching.stop()
        if self.recorder.open_run is not None:
            self.recorder.end(error=UNSEEN)  # the previous fit raised, unseen
        params = {k: v for k, v in (self.params or {}).items() if k in ("epochs", "steps")}
        self.recorder.begin(params)
        self._watching.start([(self.model, FAILURE_PATHS)])

    def _failed(self, error: BaseException) -> None:
        """``fit`` is raising ``error``: a run the callback started ends failed at once."""
        self.recorder.end(error=error)

    @never_raise
    def on_train_batch_begin(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        """Start counting FLOPs if this batch is measured."""
        self.recorder.step_start()

    @never_raise
    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        """Stop counting; every ``log_every_n_steps`` batches log the energy."""
        self.recorder.step_end(None)
        step = self.recorder.steps
        if step % self._log_every == 0:
            self.recorder.log(step, {}, ours=self.recorder.energy_at_step(step))

    @never_raise
    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        """Log the epoch's metrics (validation included) and its energy."""
        step = self.recorder.steps
        ours = self.recorder.energy_at_epoch_end(int(epoch), step)
        self.recorder.log(step, dict(logs or {}), ours=ours)

    @never_raise
    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        """Write the final counts; finish the run if the callback started it."""
        self._watching.stop()
        self.recorder.end(extra={"framework": f"keras {keras.__version__} "
                                              f"({keras.backend.backend()} backend)"})  # fmt: skip


def _end_of_data(error: BaseException) -> bool:
    """The end of an epoch's data, which ``fit`` catches and goes on (JAX and TensorFlow
    read the batch inside ``train_function``): ``StopIteration``, TensorFlow's
    ``OutOfRangeError``."""
    return isinstance(error, StopIteration) or type(error).__name__ == "OutOfRangeError"

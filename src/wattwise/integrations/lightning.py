"""PyTorch Lightning callback: metrics, energy, FLOPs and samples of a fit, into a run.

    import lightning as L
    import wattwise
    from wattwise.integrations.lightning import WattwiseCallback

    with wattwise.track("fit"):
        L.Trainer(callbacks=[WattwiseCallback()]).fit(model, data)

Without an active run the callback starts one for the fit and finishes it. If the fit
raises (in training, validation, the data, a callback), Lightning calls ``on_exception``:
the run ends ``failed`` at once, with the energy measured, the steps trained and the
error, and Lightning re-raises the exception unchanged (on ``KeyboardInterrupt`` it shuts
down and exits). Metrics are logged at Lightning's step (``trainer.global_step``,
optimiser steps); FLOPs and the energy per step are per training batch.

What goes into the run, each value once, at the step Lightning logs it at:

* what the module logs with ``self.log`` for the loggers (``trainer.logged_metrics``:
  ``train_loss_step``, ``train_loss_epoch``, ``val_acc``...), passed on only when new, so
  an old value is never repeated at a later step;
* ours, under ``wattwise/`` (a user's ``/`` becomes ``_``, so names cannot clash): every
  ``log_every_n_steps`` steps the energy and carbon so far, the energy per step and the
  power since the last log; at each epoch end the epoch's energy, carbon and time.

FLOPs are counted by ``torch.utils.flop_counter`` on the first batch (forward and
backward) and extrapolated per sample, or on every n-th batch with ``flops_every_n_steps``.
"""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl

from wattwise.flops import batch_size_of
from wattwise.integrations._guard import never_raise
from wattwise.integrations._recorder import FreshValues, StepRecorder, to_float
from wattwise.tracking import Run


class WattwiseCallback(pl.Callback):  # type: ignore[misc]  # Lightning is not analysed (pyproject)
    """Record a Lightning fit into the current wattwise run.

    Args:
        run: The run to record into (default: the current run, else a new one).
        name: Name of the run started when there is none.
        count_flops: Count FLOPs with ``torch.utils.flop_counter``.
        flops_every_n_steps: Measure every n-th batch (0: the first batch only).
        log_every_n_steps: Log the energy (and the step's new metrics) every n optimiser
            steps (default: the trainer's ``log_every_n_steps``); epoch ends always log.
    """

    def __init__(
        self,
        *,
        run: Run | None = None,
        name: str = "lightning-fit",
        count_flops: bool = True,
        flops_every_n_steps: int = 0,
        log_every_n_steps: int | None = None,
    ) -> None:
        super().__init__()
        self.recorder = StepRecorder(
            run=run, name=name, count_flops=count_flops,
            flops_every_n_steps=flops_every_n_steps, source="lightning",
        )  # fmt: skip
        self._log_every = log_every_n_steps
        self._fresh = FreshValues()

    @never_raise
    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Find or start the run; record the module's hyper-parameters if it starts one."""
        hparams = dict(getattr(pl_module, "hparams", {}) or {})
        self.recorder.begin(hparams)

    @never_raise
    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        """Start counting FLOPs if this batch is measured."""
        self.recorder.step_start()

    @never_raise
    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
        batch_idx: int,
    ) -> None:  # fmt: skip
        """Stop counting; every ``log_every_n_steps`` log the new metrics and the energy."""
        self.recorder.step_end(batch_size_of(batch))
        every = self._log_every or int(getattr(trainer, "log_every_n_steps", 50) or 50)
        step = int(trainer.global_step)
        if step > 0 and step % every == 0 and self.recorder.clock.last_step != step:
            ours = self.recorder.energy_at_step(step)
            loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
            if loss is not None:
                ours["wattwise/loss"] = _number(loss)
            self.recorder.log(step, self._fresh.fresh(trainer.logged_metrics), ours=ours)

    @never_raise
    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Log the epoch's new metrics (its validation's included) and its energy."""
        step = int(trainer.global_step)
        ours = self.recorder.energy_at_epoch_end(int(trainer.current_epoch), step)
        self.recorder.log(step, self._fresh.fresh(trainer.logged_metrics), ours=ours)

    @never_raise
    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Write the final counts; finish the run if the callback started it."""
        from importlib.metadata import version

        step = int(trainer.global_step)
        late = self._fresh.fresh(trainer.logged_metrics)  # a validation after the last epoch
        if late:
            self.recorder.log(step, late)
        self.recorder.end(extra={"framework": f"lightning {version('lightning')}"})

    @never_raise
    def on_exception(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException
    ) -> None:
        """The fit raised: a run the callback started ends failed, with its energy."""
        self.recorder.end(error=exception)


def _number(value: Any) -> float:
    number = to_float(value)
    return float("nan") if number is None else number

"""PyTorch Lightning callback: metrics, FLOPs and samples of a fit, into a wattwise run.

    import lightning as L
    import wattwise
    from wattwise.integrations.lightning import WattwiseCallback

    with wattwise.track("fit"):
        L.Trainer(callbacks=[WattwiseCallback()]).fit(model, data)

Without an active run the callback starts one for the fit and finishes it (failed if the
fit raises). A "step" is one training batch; FLOPs are counted by
``torch.utils.flop_counter`` on the first batch (forward and backward) and extrapolated
per sample, or on every n-th batch with ``flops_every_n_steps``.
"""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl

from wattwise.flops import batch_size_of
from wattwise.integrations._guard import never_raise
from wattwise.integrations._recorder import StepRecorder
from wattwise.tracking import Run


class WattwiseCallback(pl.Callback):
    """Record a Lightning fit into the current wattwise run.

    Args:
        run: The run to record into (default: the current run, else a new one).
        name: Name of the run started when there is none.
        count_flops: Count FLOPs with ``torch.utils.flop_counter``.
        flops_every_n_steps: Measure every n-th batch (0: the first batch only).
        log_every_n_steps: Log the loss every n batches (default: the trainer's
            ``log_every_n_steps``); epoch-end metrics (``self.log``) are always logged.
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
        """Stop counting, add the batch, log the loss every ``log_every_n_steps``."""
        self.recorder.step_end(batch_size_of(batch))
        every = self._log_every or int(getattr(trainer, "log_every_n_steps", 50) or 50)
        if self.recorder.steps % every == 0:
            loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
            if loss is not None:
                self.recorder.log(trainer.global_step, {"train_loss": loss})

    @never_raise
    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Log the epoch's metrics (what the module logged with ``self.log``)."""
        self.recorder.log(trainer.global_step, {"epoch": trainer.current_epoch,
                                                **trainer.callback_metrics})  # fmt: skip

    @never_raise
    def on_validation_epoch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule
    ) -> None:
        """Log validation metrics (not during the sanity check)."""
        if not trainer.sanity_checking:
            self.recorder.log(trainer.global_step, dict(trainer.callback_metrics))

    @never_raise
    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Write the final counts; finish the run if the callback started it."""
        from importlib.metadata import version

        self.recorder.end(extra={"framework": f"lightning {version('lightning')}"})

    @never_raise
    def on_exception(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException
    ) -> None:
        """Finish a run the callback started as failed."""
        self.recorder.end(error=exception)

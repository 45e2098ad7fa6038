"""Hugging Face ``Trainer`` callback: logs, FLOPs and samples of training, into a run.

    import wattwise
    from transformers import Trainer
    from wattwise.integrations.transformers import WattwiseCallback

    with wattwise.track("finetune"):
        Trainer(model=model, args=args, train_dataset=ds,
                callbacks=[WattwiseCallback()]).train()

Without an active run the callback starts one at ``on_train_begin`` and finishes it at
``on_train_end``. When ``train()`` raises, the Trainer calls no hook: the run stays open
and is finished ``failed`` at exit with the energy measured and the error (see
``wattwise.tracking``'s exit hook); the sampler's regular flushes keep it meanwhile. A hook
never raises into training because of wattwise (unless ``WATTWISE_STRICT=1``).

A "step" is one optimiser step (all gradient-accumulation micro-batches);
FLOPs are counted by ``torch.utils.flop_counter`` over the first step (forward and
backward) and extrapolated per sample; the Trainer's own ``total_flos`` estimate is kept
beside it. Samples are the nominal batch × accumulation × processes per step, corrected
at the end from the data set's length and the epochs done.
"""

from __future__ import annotations

from typing import Any

import transformers

from wattwise.integrations._guard import never_raise
from wattwise.integrations._recorder import StepRecorder
from wattwise.tracking import Run


class WattwiseCallback(transformers.TrainerCallback):
    """Record a ``transformers.Trainer`` run into the current wattwise run.

    Args:
        run: The run to record into (default: the current run, else a new one).
        name: Name of the run started when there is none.
        count_flops: Count FLOPs with ``torch.utils.flop_counter``.
        flops_every_n_steps: Measure every n-th optimiser step (0: the first only).
    """

    def __init__(
        self,
        *,
        run: Run | None = None,
        name: str = "hf-trainer",
        count_flops: bool = True,
        flops_every_n_steps: int = 0,
    ) -> None:
        self.recorder = StepRecorder(
            run=run, name=name, count_flops=count_flops,
            flops_every_n_steps=flops_every_n_steps, source="transformers",
        )  # fmt: skip
        self._dataset_len: int | None = None

    @never_raise
    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """Find or start the run; note the training set's size."""
        params = {
            "learning_rate": args.learning_rate,
            "per_device_train_batch_size": args.per_device_train_batch_size,
            "gradient_accumulation_steps": args.gradient_accumulation_steps,
            "num_train_epochs": args.num_train_epochs,
            "max_steps": args.max_steps,
            "seed": args.seed,
        }
        self.recorder.begin(params)
        loader = kwargs.get("train_dataloader")
        dataset = getattr(loader, "dataset", None)
        try:
            self._dataset_len = len(dataset) if dataset is not None else None
        except TypeError:
            self._dataset_len = None

    @never_raise
    def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """Start counting FLOPs if this optimiser step is measured."""
        self.recorder.step_start()

    @never_raise
    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """Stop counting and add the step's nominal samples."""
        per_step = (
            args.per_device_train_batch_size * args.gradient_accumulation_steps
            * max(1, int(getattr(args, "world_size", 1) or 1))
        )  # fmt: skip
        self.recorder.step_end(float(per_step))

    @never_raise
    def on_log(
        self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:  # fmt: skip
        """Copy the Trainer's numeric logs (loss, learning rate, eval metrics)."""
        if logs:
            self.recorder.log(state.global_step, logs)

    @never_raise
    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """Write the final counts; finish the run if the callback started it."""
        samples = None
        epoch = getattr(state, "epoch", None)
        if self._dataset_len and isinstance(epoch, (int, float)) and epoch > 0:
            samples = float(round(self._dataset_len * epoch))
        extra = {
            "framework": f"transformers {transformers.__version__}",
            "trainer_total_flos": float(getattr(state, "total_flos", 0.0) or 0.0),
            "trainer_total_flos_method": "Trainer.floating_point_ops (6 x parameters x "
            "tokens estimate)",
        }
        self.recorder.end(extra=extra, samples_total=samples)

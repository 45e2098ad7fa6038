"""Hugging Face ``Trainer`` callback: logs, energy, FLOPs and samples of training, into a run.

    import wattwise
    from transformers import Trainer
    from wattwise.integrations.transformers import WattwiseCallback

    with wattwise.track("finetune"):
        trainer = Trainer(model=model, args=args, train_dataset=ds,
                          callbacks=[WattwiseCallback()])
        trainer.train()
        trainer.create_model_card()  # its YAML header gets co2_eq_emissions

Without an active run the callback starts one at ``on_train_begin`` and finishes it at
``on_train_end``. The Trainer calls no hook when ``train()`` raises, so the callback, given
in ``callbacks=[...]``, wraps that Trainer's ``train`` (on the instance, the call and the
exception unchanged): a run it started ends ``failed`` at once with the energy measured
and the error (in a notebook too, where the process lives on). Added later with
``trainer.add_callback``, it cannot, and the run ends ``failed`` at the process's exit. It
also wraps ``create_model_card`` (which ``push_to_hub`` calls): the card's header gets
``co2_eq_emissions`` for the run (grams, fixed-point). A hook never raises into training
because of wattwise (unless ``WATTWISE_STRICT=1``).

What goes into the run: the Trainer's numeric logs (loss, learning rate, eval metrics) at
its ``global_step``; at each of those steps, ours under ``wattwise/``: the energy and
carbon so far, the energy per optimiser step and the power since the previous log; at
each epoch end the epoch's energy, carbon and time.

A "step" is one optimiser step (all gradient-accumulation micro-batches);
FLOPs are counted by ``torch.utils.flop_counter`` over the first step (forward and
backward) and extrapolated per sample; the Trainer's own ``total_flos`` estimate is kept
beside it. Samples are the nominal batch × accumulation × processes per step, corrected
at the end from the data set's length and the epochs done.
"""

from __future__ import annotations

import functools
import inspect
import math
from pathlib import Path
from typing import Any

import transformers

from wattwise.integrations._card import emissions_block, write_into_card
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
        training_type: The model card's ``training_type``: ``"fine-tuning"`` or
            ``"pre-training"``.
    """

    def __init__(
        self,
        *,
        run: Run | None = None,
        name: str = "hf-trainer",
        count_flops: bool = True,
        flops_every_n_steps: int = 0,
        training_type: str = "fine-tuning",
    ) -> None:
        from wattwise.exceptions import InvalidParameterError

        if training_type not in ("fine-tuning", "pre-training"):
            msg = (
                "The 'training_type' parameter must be 'fine-tuning' or 'pre-training' (the "
                f"Hub's values). Got {training_type!r} instead."
            )
            raise InvalidParameterError(msg)
        self.recorder = StepRecorder(
            run=run, name=name, count_flops=count_flops,
            flops_every_n_steps=flops_every_n_steps, source="transformers",
        )  # fmt: skip
        self._dataset_len: int | None = None
        self._training_type = training_type

    @never_raise
    def on_init_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """Wrap the Trainer's ``train`` and ``create_model_card`` (see the module)."""
        trainer = _calling_trainer()
        if trainer is not None and not getattr(trainer, "_wattwise_wrapped", False):
            _wrap(trainer, self)

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
        """Copy the Trainer's numeric logs; add the energy at this step (once per step)."""
        step = int(state.global_step)
        ours = self.recorder.energy_at_step(step) if step > 0 else {}
        self.recorder.log(step, logs or {}, ours=ours)

    @never_raise
    def on_epoch_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """Log the epoch's energy, carbon and time."""
        epoch = getattr(state, "epoch", None)
        done = math.ceil(epoch) if isinstance(epoch, (int, float)) and epoch > 0 else 1
        step = int(state.global_step)
        self.recorder.log(step, {}, ours=self.recorder.energy_at_epoch_end(done - 1, step))

    @never_raise
    def train_raised(self, error: BaseException) -> None:
        """``train()`` raised: a run the callback started ends failed, with its energy."""
        self.recorder.end(error=error)

    @never_raise
    def write_model_card(self, trainer: Any) -> None:
        """Put ``co2_eq_emissions`` into the card ``create_model_card`` just wrote."""
        run = self.recorder.run
        if run is None or not trainer.is_world_process_zero():
            return
        path = Path(trainer.args.output_dir) / "README.md"
        write_into_card(path, emissions_block(run, training_type=self._training_type))

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


def _calling_trainer() -> Any:
    """The ``Trainer`` whose ``__init__`` is calling ``on_init_end`` (None if not found)."""
    frame = inspect.currentframe()
    try:
        for _ in range(12):
            if frame is None:
                return None
            candidate = frame.f_locals.get("self")
            if isinstance(candidate, transformers.Trainer):
                return candidate
            frame = frame.f_back
        return None
    finally:
        del frame


def _wrap(trainer: Any, callback: WattwiseCallback) -> None:
    """Wrap ``trainer.train`` and ``trainer.create_model_card`` on the instance: the calls,
    their results and their exceptions pass through unchanged."""
    train = trainer.train
    create_model_card = trainer.create_model_card

    @functools.wraps(train)
    def wrapped_train(*args: Any, **kwargs: Any) -> Any:
        try:
            return train(*args, **kwargs)
        except BaseException as err:
            callback.train_raised(err)
            raise

    @functools.wraps(create_model_card)
    def wrapped_card(*args: Any, **kwargs: Any) -> Any:
        result = create_model_card(*args, **kwargs)
        callback.write_model_card(trainer)
        return result

    trainer.train = wrapped_train
    trainer.create_model_card = wrapped_card
    trainer._wattwise_wrapped = True

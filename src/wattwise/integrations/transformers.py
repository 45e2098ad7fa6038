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
``on_train_end``. The Trainer calls no hook when ``train()`` raises, so at ``on_train_begin``
the callback wraps, on that Trainer instance, the methods a failure passes through (see
:data:`FAILURE_PATHS`), however the callback was added (``callbacks=[...]`` or
``trainer.add_callback``); ``on_train_end`` puts them back. A failure in the data, the
forward, loss or backward pass, the optimiser step, a callback, evaluation, checkpointing
or logging then ends a run the callback started ``failed`` at once, with the energy
measured and the error (in a notebook too, where the process lives on), and the exception
goes on unchanged: the same object, its traceback with a frame more per wrapper passed.
Given in ``callbacks=[...]``, the callback also wraps that Trainer's ``train``, which sees
anything else ``train()`` raises; added with ``add_callback``, a failure no wrapper sees
(another callback's ``on_train_begin``) ends the run ``failed`` at the next ``train()`` or
at the process's exit. An out-of-memory error that ``auto_find_batch_size`` retries with a
smaller batch is not a failure: the retry goes on in the same run.

It also wraps ``create_model_card`` (which ``push_to_hub`` calls): the card's header gets
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
import weakref
from pathlib import Path
from typing import Any

import transformers

from wattwise.integrations._card import emissions_block, write_into_card
from wattwise.integrations._guard import Watching, never_raise, while_raising
from wattwise.integrations._recorder import StepRecorder
from wattwise.tracking import Run

#: The Trainer methods wrapped at ``on_train_begin`` to see a failure of ``train()``: the
#: group whose first method the Trainer has (the first such group; those of its methods the
#: Trainer has). They are looked up on the instance at each call, and nothing in the
#: Trainer between them and ``train()`` catches an exception (but ``auto_find_batch_size``,
#: which retries on out-of-memory: not a failure). Transformers 5 runs each epoch in
#: ``_run_epoch`` (its data, steps, optimiser, callbacks, evaluation, checkpoints and
#: logs), then ``_finalize_training``; ``_evaluate`` is also the evaluation at start
#: (``eval_on_start``). Older versions run the loop inline: their step, data and
#: evaluation/saving methods. The callback handler's ``call_event`` is wrapped as well (a
#: callback that raises, in ``on_epoch_begin`` too).
FAILURE_PATHS = (
    ("_run_epoch", "_finalize_training", "_evaluate"),
    ("training_step", "get_batch_samples", "_maybe_log_save_evaluate", "_evaluate"),
)


#: Why a run still open at the next ``train()`` ended: the previous ``train()`` raised where
#: no wrapper saw it (another callback's ``on_train_begin``, with ``add_callback``).
UNSEEN = (
    "the previous train() raised where the callback could not see it (its error is not "
    "known); the run was ended failed when train() was called again"
)


class WattwiseCallback(transformers.TrainerCallback):  # type: ignore[misc]  # not analysed
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
        self._trainer: weakref.ref[Any] | None = None
        self._watching = Watching(self, self._failed)
        self._retried: Any = lambda error: False
        self._retrying = False

    @never_raise
    def on_init_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """Wrap the Trainer's ``train`` and ``create_model_card`` (see the module)."""
        trainer = _calling_trainer(self)
        if trainer is not None:
            self._trainer = weakref.ref(trainer)
            _wrap_train(trainer, self)
            _wrap_card(trainer, self)

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
        if not self._retrying and self.recorder.open_run is not None:
            self.recorder.end(error=UNSEEN)  # the previous train() raised, unseen
        self._retrying = False
        self.recorder.begin(params)
        self._watch_failures()
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

    def _watch_failures(self) -> None:
        """Wrap the Trainer's failure paths for this ``train()`` (see the module)."""
        self._watching.stop()
        trainer = self._trainer() if self._trainer is not None else None
        if trainer is None or self not in trainer.callback_handler.callbacks:
            trainer = _calling_trainer(self)  # added with add_callback: found once per train()
            if trainer is None:
                return
            self._trainer = weakref.ref(trainer)
        _wrap_card(trainer, self)
        self._retried = _retried_by(trainer)
        has = [names for names in FAILURE_PATHS if callable(getattr(trainer, names[0], None))]
        group = has[0] if has else ()
        self._watching.start([(trainer, group), (trainer.callback_handler, ["call_event"])])

    def _failed(self, error: BaseException) -> None:
        """``train()`` is raising ``error``: a run the callback started ends failed at once
        (unless ``auto_find_batch_size`` retries: then the step is dropped, the run goes on)."""
        if self._retried(error):
            self._retrying = True
            self.recorder.drop_step()
        else:
            self.recorder.end(error=error)

    def train_raised(self, error: BaseException) -> None:
        """``train()`` raised (seen by the ``train`` wrapper): as :meth:`_failed`."""
        while_raising(self, "train_raised", self._watching.stop)
        while_raising(self, "train_raised", lambda: self.recorder.end(error=error))

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
        self._watching.stop()
        self.recorder.end(extra=extra, samples_total=samples)


def _calling_trainer(callback: WattwiseCallback) -> Any:
    """The ``Trainer`` calling the hook now, found on the stack (None if not found).

    The Trainer passes no reference to itself to its callbacks, so this is the one way to
    find it. Guarded: the first ``self`` up to 16 frames above that is a ``Trainer`` whose
    callback handler holds ``callback``; at most once per ``Trainer()`` and ``train()``.
    """
    frame = inspect.currentframe()
    try:
        for _ in range(16):
            if frame is None:
                return None
            candidate = frame.f_locals.get("self")
            if isinstance(candidate, transformers.Trainer):
                handler = getattr(candidate, "callback_handler", None)
                if handler is not None and callback in getattr(handler, "callbacks", ()):
                    return candidate
                return None
            frame = frame.f_back
        return None
    finally:
        del frame


def _retried_by(trainer: Any) -> Any:
    """What the Trainer's ``auto_find_batch_size`` catches and retries with a smaller batch."""

    def retried(error: BaseException) -> bool:
        if not getattr(trainer.args, "auto_find_batch_size", False):
            return False
        from accelerate.utils.memory import should_reduce_batch_size

        return isinstance(error, Exception) and bool(should_reduce_batch_size(error))

    return retried


def _wrap_train(trainer: Any, callback: WattwiseCallback) -> None:
    """Wrap ``trainer.train`` on the instance: the call, its result and its exception pass
    through unchanged."""
    if getattr(trainer, "_wattwise_train_wrapped", False):
        return
    train = trainer.train

    @functools.wraps(train)
    def wrapped_train(*args: Any, **kwargs: Any) -> Any:
        try:
            return train(*args, **kwargs)
        except BaseException as err:
            callback.train_raised(err)
            raise

    trainer.train = wrapped_train
    trainer._wattwise_train_wrapped = True


def _wrap_card(trainer: Any, callback: WattwiseCallback) -> None:
    """Wrap ``trainer.create_model_card`` on the instance: the card gets the emissions."""
    if getattr(trainer, "_wattwise_card_wrapped", False):
        return
    create_model_card = trainer.create_model_card

    @functools.wraps(create_model_card)
    def wrapped_card(*args: Any, **kwargs: Any) -> Any:
        result = create_model_card(*args, **kwargs)
        callback.write_model_card(trainer)
        return result

    trainer.create_model_card = wrapped_card
    trainer._wattwise_card_wrapped = True

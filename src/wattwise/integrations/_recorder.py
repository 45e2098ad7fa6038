"""What the framework callbacks share: find (or start) the run, count FLOPs per step, log."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from wattwise.exceptions import InvalidParameterError
from wattwise.flops import METHOD, StepCounter
from wattwise.tracking import Run, current_run


def to_float(value: Any) -> float | None:
    """A metric value as a finite-or-not float: numbers, 0-d tensors, numpy scalars."""
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)):
        return float(value)
    item = getattr(value, "item", None)
    numel = getattr(value, "numel", None)
    if callable(item) and (not callable(numel) or numel() == 1):
        try:
            number = item()
        except (TypeError, ValueError, RuntimeError):
            return None
        if isinstance(number, (int, float)):
            return float(number)
    return None


class StepRecorder:
    """Per-step accounting for a training loop, written into a wattwise run.

    Args:
        run: The run to record into; default: the current run at training start, else
            a run this recorder starts and finishes itself.
        name: Name of the run it starts when there is none.
        count_flops: Count FLOPs with ``torch.utils.flop_counter``.
        flops_every_n_steps: Count on every n-th step (0: the first step only, then
            extrapolate per sample, the cheap default).
        source: Who records (``lightning``, ``transformers``).
    """

    def __init__(
        self, *, run: Run | None, name: str, count_flops: bool, flops_every_n_steps: int,
        source: str,
    ) -> None:  # fmt: skip
        if isinstance(flops_every_n_steps, bool) or not isinstance(flops_every_n_steps, int) or (
            flops_every_n_steps < 0
        ):
            msg = (
                "The 'flops_every_n_steps' parameter must be an int >= 0. Got "
                f"{flops_every_n_steps!r} instead."
            )
            raise InvalidParameterError(msg)
        self._given = run
        self._name = name
        self._count = count_flops
        self._every = flops_every_n_steps
        self._source = source
        self.run: Run | None = None
        self._owned = False
        self._counter: StepCounter | None = None
        self.steps = 0
        self.samples = 0.0
        self._samples_known = True
        self._measured_flops = 0
        self._measured_steps = 0
        self._measured_samples = 0.0

    # -- lifecycle ----------------------------------------------------------------

    def begin(self, params: Mapping[str, Any] | None = None) -> Run:
        """Resolve the run at training start (start one if there is none)."""
        if self.run is not None:
            return self.run
        run = self._given or current_run()
        if run is None:
            run = Run(self._name, config=dict(params or {}), tags=[self._source])
            run.__enter__()
            self._owned = True
        self.run = run
        return run

    def end(self, *, error: BaseException | None = None, extra: Mapping[str, Any] | None = None,
            samples_total: float | None = None) -> None:  # fmt: skip
        """Record the final counts and finish the run if this recorder started it."""
        if self._counter is not None and self._counter.active:
            self._counter.stop()
        if self.run is None:
            return
        if samples_total is not None:
            self.samples = samples_total
            self._samples_known = True
        self._record(extra)
        if self._owned:
            if error is None:
                self.run.__exit__(None, None, None)
            else:
                self.run.__exit__(type(error), error, error.__traceback__)
            self._owned = False

    # -- steps --------------------------------------------------------------------

    def _should_count(self) -> bool:
        if not self._count:
            return False
        if self._every == 0:
            return self._measured_steps == 0
        return self.steps % self._every == 0

    def step_start(self) -> None:
        """Open the FLOP counter if this step is one to measure."""
        if not self._should_count():
            return
        if self._counter is None:
            self._counter = StepCounter()
        self._counter.start()

    def step_end(self, batch_size: float | None) -> None:
        """Close the counter, add the step and its samples, update the run's record."""
        flops = None
        if self._counter is not None and self._counter.active:
            flops = self._counter.stop()
            self._counter = None
        if batch_size is None:
            self._samples_known = False
        else:
            self.samples += batch_size
        if flops is not None:
            self._measured_flops += flops
            self._measured_steps += 1
            self._measured_samples += batch_size or 0.0
        self.steps += 1
        self._record(None)

    def log(self, step: int | None, metrics: Mapping[str, Any]) -> None:
        """Log numeric metrics (tensors included) to the run; others are skipped."""
        if self.run is None:
            return
        numbers = {}
        for key, value in metrics.items():
            number = to_float(value)
            if number is not None and math.isfinite(number):
                numbers[str(key).replace("/", "_")] = number
        if numbers:
            self.run.log(step, **numbers)

    def _record(self, extra: Mapping[str, Any] | None) -> None:
        if self.run is None or self._measured_steps == 0:
            return
        per_step = self._measured_flops / self._measured_steps
        if self._measured_steps == self.steps:
            total = float(self._measured_flops)
            how = "every step measured"
        elif self._samples_known and self._measured_samples > 0:
            total = self._measured_flops / self._measured_samples * self.samples
            how = (
                f"{self._measured_steps} of {self.steps} steps measured, extrapolated per "
                "sample"
            )
        else:
            total = per_step * self.steps
            how = f"{self._measured_steps} of {self.steps} steps measured, extrapolated per step"
        samples = self.samples if self._samples_known and self.samples > 0 else None
        self.run.record_flops(
            per_step, steps=self.steps, flops_total=total,
            samples_per_step=samples / self.steps if samples and self.steps else None,
            samples_total=samples, source=self._source, passes="forward+backward",
            method=METHOD, details={"extrapolation": how, **dict(extra or {})},
        )  # fmt: skip

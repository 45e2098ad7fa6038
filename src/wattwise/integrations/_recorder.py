"""What the framework callbacks share: find (or start) the run, count FLOPs per step, log
the user's metrics and the energy of the steps and epochs.

The callbacks' own metrics are named under ``wattwise/`` (see :data:`ENERGY_METRICS`); the
user's metric names have ``/`` replaced by ``_``, so a user's name can never enter that
namespace and nothing of ours can overwrite what the user logged.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from wattwise.exceptions import InvalidParameterError
from wattwise.flops import METHOD, StepCounter
from wattwise.store import RunStatus
from wattwise.tracking import Run, RunState, current_run

#: The metrics the callbacks log beside the user's, at the steps and epochs they log.
ENERGY_METRICS = {
    "wattwise/energy_j": "energy of the run so far, in joules (all components, before PUE)",
    "wattwise/energy_band_j": "half-width of the uncertainty band of wattwise/energy_j, in J",
    "wattwise/co2e_g": "operational emissions of the run so far, in gCO2e",
    "wattwise/step_energy_j": "mean energy per training step since the previous logged step",
    "wattwise/power_w": "mean power since the previous logged step, in watts",
    "wattwise/epoch": "the epoch that just ended (0-based)",
    "wattwise/epoch_energy_j": "energy of that epoch (its validation included), in joules",
    "wattwise/epoch_co2e_g": "operational emissions of that epoch, in gCO2e",
    "wattwise/epoch_duration_s": "wall time of that epoch, in seconds",
}


def user_key(key: Any) -> str:
    """A user's metric name as recorded: ``/`` becomes ``_`` (``wattwise/`` stays ours)."""
    return str(key).replace("/", "_")


def _identity(value: Any) -> tuple[Any, ...]:
    """What tells a fresh metric value from one seen before.

    Tensors: their storage (device and address). A framework hands out new views of the
    same stored value each time it is read (``detach()``), but a newly computed value has
    new storage; the old one cannot be reused while :class:`FreshValues` holds it.
    Anything else: its value.
    """
    ptr = getattr(value, "data_ptr", None)
    if callable(ptr):
        try:
            return ("tensor", str(getattr(value, "device", "")), int(ptr()))
        except (TypeError, ValueError, RuntimeError):
            pass
    return ("value", to_float(value))


class FreshValues:
    """Keeps, per metric name, the value last passed on; passes on only new values.

    A framework's metric dictionaries keep every name's latest value, so reading them at
    each hook would repeat old values at new steps (an epoch-0 mean shown at step 44).
    """

    def __init__(self) -> None:
        self._seen: dict[str, tuple[Any, tuple[Any, ...]]] = {}

    def fresh(self, metrics: Mapping[str, Any]) -> dict[str, Any]:
        """The entries of ``metrics`` not passed on before (and remember them)."""
        out = {}
        for key, value in metrics.items():
            ident = _identity(value)
            seen = self._seen.get(key)
            if seen is not None and seen[1] == ident:
                continue
            self._seen[key] = (value, ident)  # holding it keeps its storage from reuse
            out[key] = value
        return out


class EnergyClock:
    """The run's energy at logged steps and at epoch ends, from ``Run.snapshot()``.

    Each call takes one sample of the meters (what ``snapshot`` does), so the callbacks
    call it only at the steps they log and at epoch ends, never on every batch.
    """

    def __init__(self) -> None:
        self._last: tuple[float, float, int] | None = None  # energy, time, steps
        self._epoch_start: tuple[float, float, float] | None = None  # energy, co2e, time
        self.last_step: int | None = None

    def start(self, run: Run) -> None:
        """Mark the start of training (the first epoch starts here)."""
        snap = run.snapshot()
        self._last = (snap["energy_j"], snap["duration_s"], 0)
        self._epoch_start = (snap["energy_j"], snap["co2e_g"], snap["duration_s"])

    def at_step(self, run: Run, step: int, steps_done: int) -> dict[str, float]:
        """Energy so far and since the previous logged step, for a log at ``step``."""
        snap = run.snapshot()
        out = {
            "wattwise/energy_j": snap["energy_j"],
            "wattwise/energy_band_j": snap["energy_band_j"],
            "wattwise/co2e_g": snap["co2e_g"],
        }
        if self._last is not None:
            energy, t, steps = self._last
            if steps_done > steps:
                out["wattwise/step_energy_j"] = (snap["energy_j"] - energy) / (steps_done - steps)
            if snap["duration_s"] > t:
                out["wattwise/power_w"] = (snap["energy_j"] - energy) / (snap["duration_s"] - t)
        self._last = (snap["energy_j"], snap["duration_s"], steps_done)
        self.last_step = step
        return out

    def at_epoch_end(self, run: Run, epoch: int, step: int) -> dict[str, float]:
        """The epoch's energy, carbon and time; the totals so far unless ``step`` had them."""
        snap = run.snapshot()
        out: dict[str, float] = {"wattwise/epoch": float(epoch)}
        if self._epoch_start is not None:
            energy, co2e, t = self._epoch_start
            out["wattwise/epoch_energy_j"] = snap["energy_j"] - energy
            out["wattwise/epoch_co2e_g"] = snap["co2e_g"] - co2e
            out["wattwise/epoch_duration_s"] = snap["duration_s"] - t
        self._epoch_start = (snap["energy_j"], snap["co2e_g"], snap["duration_s"])
        if self.last_step != step:
            out.update({
                "wattwise/energy_j": snap["energy_j"],
                "wattwise/energy_band_j": snap["energy_band_j"],
                "wattwise/co2e_g": snap["co2e_g"],
            })  # fmt: skip
            self.last_step = step
        return out


def to_float(value: Any) -> float | None:
    """A metric value as a finite-or-not float: numbers, 0-d tensors, numpy scalars."""
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)):
        return float(value)
    detach = getattr(value, "detach", None)  # a loss that requires grad
    if callable(detach):
        try:
            value = detach()
        except (TypeError, ValueError, RuntimeError):
            return None
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
        self._reset_counts()

    # -- lifecycle ----------------------------------------------------------------

    def begin(self, params: Mapping[str, Any] | None = None) -> Run:
        """Resolve the run at training start (start one if there is none)."""
        self.drop_step()  # a step that raised (and was retried) never ended
        if self.run is not None and self.run.state is RunState.RUNNING:
            return self.run
        run = self._given or current_run()
        if run is None:
            run = Run(self._name, config=dict(params or {}), tags=[self._source])
            run.__enter__()
            self._owned = True
        if run is not self.run:  # a new run (a later training): its counts start at zero
            self._reset_counts()
        self.run = run
        self.clock.start(run)
        return run

    def _reset_counts(self) -> None:
        self.steps = 0
        self.samples = 0.0
        self._samples_known = True
        self._measured_flops = 0
        self._measured_steps = 0
        self._measured_samples = 0.0
        self.clock = EnergyClock()
        self._last_logged: dict[str, tuple[int | None, float]] = {}

    @property
    def open_run(self) -> Run | None:
        """The run this recorder started and has not finished yet (None if none)."""
        if self._owned and self.run is not None and self.run.state is RunState.RUNNING:
            return self.run
        return None

    def end(self, *, error: BaseException | str | None = None,
            extra: Mapping[str, Any] | None = None,
            samples_total: float | None = None) -> None:  # fmt: skip
        """Record the final counts and finish the run if this recorder started it.

        Args:
            error: Why training failed: the exception (the run ends ``failed`` with it,
                as a ``with`` block would) or a description; None: it did not fail.
            extra: More details for the FLOP record.
            samples_total: The samples trained on, when known better at the end.

        A run that has ended already (a second call, a later ``validate`` failing) is left
        as it is.
        """
        self.drop_step()
        if self.run is None or self.run.state is not RunState.RUNNING:
            self._owned = False
            return
        if samples_total is not None:
            self.samples = samples_total
            self._samples_known = True
        self._record(extra)
        if self._owned:
            self._owned = False
            if error is None:
                self.run.__exit__(None, None, None)
            elif isinstance(error, str):
                self.run.finish(RunStatus.FAILED, error=error[:500])
            else:
                self.run.__exit__(type(error), error, error.__traceback__)

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

    def drop_step(self) -> None:
        """Stop counting a step that will not end (it raised): it is not counted."""
        if self._counter is not None and self._counter.active:
            self._counter.stop()
        self._counter = None

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

    def log(self, step: int | None, metrics: Mapping[str, Any], *,
            ours: Mapping[str, float] | None = None) -> None:  # fmt: skip
        """Log the user's numeric metrics (tensors included; others skipped) and ours.

        Args:
            step: The step to log at.
            metrics: The user's metrics, names recorded by :func:`user_key`.
            ours: The callback's own metrics (``wattwise/...``), names kept.
        """
        if self.run is None:
            return
        numbers = {}
        for key, value in metrics.items():
            number = to_float(value)
            if number is not None and math.isfinite(number):
                numbers[user_key(key)] = number
        for key, value in (ours or {}).items():
            if math.isfinite(value):
                numbers[key] = value
        # a framework that logs a value again at the same step (the Trainer's "epoch" in
        # its final summary) records it once
        numbers = {k: v for k, v in numbers.items() if self._last_logged.get(k) != (step, v)}
        if numbers:
            self.run.log(step, **numbers)
            self._last_logged.update({k: (step, v) for k, v in numbers.items()})

    def energy_at_step(self, step: int) -> dict[str, float]:
        """Our energy metrics for a log at ``step`` (empty if logged there already)."""
        if self.run is None or self.clock.last_step == step:
            return {}
        return self.clock.at_step(self.run, step, self.steps)

    def energy_at_epoch_end(self, epoch: int, step: int) -> dict[str, float]:
        """Our metrics for the end of ``epoch`` (at ``step``)."""
        if self.run is None:
            return {}
        return self.clock.at_epoch_end(self.run, epoch, step)

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

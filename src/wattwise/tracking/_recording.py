"""What the user records in a run: metrics, parameters, data, FLOPs and facts.

Everything here only changes the run's state in memory, under the run's lock; the
sampler thread hands it to the ledger writer at the next flush (metrics logged since the
last flush, the record and the parameters as they stand). Nothing here waits on the ledger.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from wattwise.tracking import _observe
from wattwise.tracking._active import _points
from wattwise.tracking._state import RunFields


class RecordingMixin(RunFields):
    """The recording methods of :class:`~wattwise.tracking.Run`."""

    def log(self, step: int | None = None, **metrics: float) -> None:
        """Record metric values (``run.log(step=3, val_acc=0.91, loss=0.2)``).

        Raises:
            InvalidParameterError: A value is not a finite-or-not real number.
            RunStateError: The run is not running.
        """
        self._require_running("log to")
        points = _points(step, metrics)
        with self._lock:
            self._pending_metrics.extend(points)
            self._last_metrics.update({p[1]: p[2] for p in points})
        _observe.run_logged(self, step, {p[1]: p[2] for p in points})  # type: ignore[arg-type]

    def set_params(self, **params: Any) -> None:
        """Add or update the run's parameters (kept in the record)."""
        with self._lock:
            self.params.update(params)

    def use_data(self, path_or_array: Any, *, name: str | None = None) -> dict[str, Any]:
        """Declare data the run reads: its content hash and size go in ``record["data"]``.

        Args:
            path_or_array: A file or folder path, a NumPy array, a torch tensor or bytes.
            name: A label (default: the file or folder name, or ``array``).

        Returns:
            The fingerprint (see :func:`wattwise.repro.fingerprint`).

        Raises:
            InvalidParameterError: The path does not exist or the type is not supported.
            RunStateError: The run is not running.
        """
        from wattwise.environment import fingerprint

        self._require_running("record data in")
        found = fingerprint(path_or_array, name=name)
        self.set_record("data", found, append=True)
        return found

    def set_record(self, key: str, value: Any, *, append: bool = False) -> None:
        """Set (or append to a list at) a top-level record field (seeds, data).

        Prefer the dedicated methods (``use_data``, ``annotate``, ``record_flops``); this
        is for workflows recording a fact of their own (``wattwise.seed_everything``).
        """
        with self._lock:
            if append:
                self._record.setdefault(key, []).append(value)
            else:
                self._record[key] = value

    def annotate(self, key: str, value: Any) -> None:
        """Attach a JSON-serialisable fact to the run record under ``extra[key]``."""
        with self._lock:
            self._record.setdefault("extra", {})[key] = value

    def count_flops(
        self, model: Any, example_batch: Any, *, steps: int = 1, include_backward: bool = False
    ) -> int:
        """Count ``model``'s FLOPs on ``example_batch`` and record them with the run.

        Counted by ``torch.utils.flop_counter`` (see
        :func:`wattwise.flops.count_flops`); reports show them beside energy
        (FLOPs per joule, samples per joule).

        Args:
            model: A ``torch.nn.Module``.
            example_batch: One batch (a mapping is passed as keyword arguments).
            steps: How many such calls the run makes; the total is per step × steps.
            include_backward: Count a training step (forward and backward passes).

        Returns:
            FLOPs of one call.
        """
        from wattwise.flops import count_flops

        count = count_flops(model, example_batch, include_backward=include_backward)
        self.record_flops(
            count.flops, steps=steps, samples_per_step=count.batch_size,
            source="run.count_flops", passes=count.passes,
            details={"n_parameters": count.n_parameters, "by_operator": count.by_operator},
        )  # fmt: skip
        return count.flops

    def record_flops(
        self, flops_per_step: float, *, steps: int = 1, samples_per_step: float | None = None,
        flops_total: float | None = None, samples_total: float | None = None,
        source: str = "user", passes: str = "forward", method: str = "torch.utils.flop_counter",
        details: Mapping[str, Any] | None = None,
    ) -> None:  # fmt: skip
        """Record the FLOPs (and samples) the run processed, in its record's ``flops``.

        Totals default to per step × ``steps``. The callbacks call this as training goes,
        so a crashed run keeps what was counted up to its last flush.

        Args:
            flops_per_step: FLOPs of one step (or call).
            steps: Steps the run made.
            samples_per_step: Examples per step, if known.
            flops_total: Total FLOPs, when not per step × steps (e.g. a smaller last batch).
            samples_total: Total examples, likewise.
            source: Who counted (``run.count_flops``, ``lightning``, ``transformers``).
            passes: ``forward`` or ``forward+backward``.
            method: How (``torch.utils.flop_counter``, ``6·N·D estimate``, ``user``).
            details: More JSON-serialisable facts (operators, parameters).

        Raises:
            InvalidParameterError: A count is negative or not finite, or steps < 0.
        """
        from wattwise.flops import flops_record

        found = flops_record(
            flops_per_step, steps=steps, samples_per_step=samples_per_step,
            flops_total=flops_total, samples_total=samples_total, source=source,
            passes=passes, method=method, details=details,
        )  # fmt: skip
        with self._lock:
            self._record["flops"] = found

"""FLOPs of a model on a batch, counted by ``torch.utils.flop_counter.FlopCounterMode``.

PyTorch's counter adds up the floating-point operations of the matrix multiplications,
convolutions and attention kernels it dispatches (2 per multiply-add); element-wise
operations are not counted. Green AI (Schwartz et al. 2019) asks for FLOPs beside
accuracy; Henderson et al. (2020) show they are a poor proxy for energy, so wattwise
reports both. ``torch`` is imported when a count is made, not at import.

A fact about the work, like the meters' readings: runs (``Run.count_flops``) and the
training callbacks (``wattwise.integrations``) both count through this module, which
imports nothing of wattwise but its exceptions. ``wattwise.integrations.flops`` is its old
name.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from wattwise.exceptions import InvalidParameterError, WattwiseError

METHOD = "torch.utils.flop_counter"


@dataclasses.dataclass(frozen=True)
class FlopCount:
    """FLOPs of one call of a model.

    Attributes:
        flops: Floating-point operations of the call (2 per multiply-add).
        by_operator: ATen operator → FLOPs (``aten.addmm``, ``aten.convolution``, ...).
        batch_size: Examples in the batch (first dimension of its first tensor), if known.
        passes: ``"forward"`` or ``"forward+backward"``.
        n_parameters: Parameters of the model (all, trainable or not).
        method: Always ``"torch.utils.flop_counter"``.
    """

    flops: int
    by_operator: dict[str, int]
    batch_size: int | None
    passes: str
    n_parameters: int
    method: str = METHOD

    def to_dict(self) -> dict[str, Any]:
        """JSON shape."""
        return dataclasses.asdict(self)


def _import_torch() -> Any:
    try:
        import torch
        from torch.utils import flop_counter
    except ImportError as err:
        msg = (
            "Counting FLOPs needs PyTorch. Install it with: pip install 'wattwise[torch]' "
            "(or pip install torch)."
        )
        raise WattwiseError(msg) from err
    return torch, flop_counter


def _tensors(value: Any) -> Iterator[Any]:
    import torch

    if isinstance(value, torch.Tensor):
        yield value
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from _tensors(item)
    elif isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        for item in value:
            yield from _tensors(item)


def batch_size_of(batch: Any) -> int | None:
    """Examples in a batch: the first dimension of its first tensor (None if no tensor)."""
    for tensor in _tensors(batch):
        if tensor.dim() > 0:
            return int(tensor.shape[0])
    return None


def _scalar(output: Any) -> Any:
    """A scalar to call ``backward()`` on: the output's ``loss``, else the sum of a tensor."""
    import torch

    loss = getattr(output, "loss", None)
    if isinstance(loss, torch.Tensor) and loss.requires_grad:
        return loss if loss.dim() == 0 else loss.sum()
    if isinstance(output, Mapping) and isinstance(output.get("loss"), torch.Tensor):
        return output["loss"].sum()
    for tensor in _tensors(output):
        if tensor.requires_grad and tensor.is_floating_point():
            return tensor.sum()
    msg = (
        "Cannot count backward FLOPs: the model's output has no tensor that requires a "
        "gradient. Call with include_backward=False, or put the model in training mode."
    )
    raise InvalidParameterError(msg)


def _call(model: Any, batch: Any) -> Any:
    if isinstance(batch, Mapping):
        return model(**batch)
    if isinstance(batch, tuple):
        return model(*batch)
    return model(batch)


def count_flops(model: Any, example_batch: Any, *, include_backward: bool = False) -> FlopCount:
    """Count the FLOPs of ``model`` on ``example_batch``.

    The batch is passed as keyword arguments if it is a mapping (Hugging Face style),
    as positional arguments if it is a tuple, else as the single argument. With
    ``include_backward`` the count covers a training step's forward and backward passes
    (the loss is the output's ``loss``, else the sum of its first tensor); gradients the
    model held before are restored afterwards.

    Args:
        model: A ``torch.nn.Module`` (or any callable running torch operations).
        example_batch: One batch of inputs.
        include_backward: Count the backward pass too (about 2× the forward).

    Returns:
        The count.

    Raises:
        WattwiseError: PyTorch is not installed.
        InvalidParameterError: Backward requested but the output has nothing to
            differentiate.
    """
    torch, flop_counter = _import_torch()
    params = list(model.parameters()) if hasattr(model, "parameters") else []
    saved = [p.grad for p in params]
    try:
        with flop_counter.FlopCounterMode(display=False) as counter:
            if include_backward:
                _scalar(_call(model, example_batch)).backward()
            else:
                with torch.no_grad():
                    _call(model, example_batch)
    finally:
        if include_backward:
            for p, grad in zip(params, saved, strict=True):
                p.grad = grad
    by_op = {str(op): int(n) for op, n in counter.get_flop_counts().get("Global", {}).items()}
    return FlopCount(
        flops=int(counter.get_total_flops()),
        by_operator=by_op,
        batch_size=batch_size_of(example_batch),
        passes="forward+backward" if include_backward else "forward",
        n_parameters=sum(int(p.numel()) for p in params),
    )


class StepCounter:
    """Counts the FLOPs of whatever runs between :meth:`start` and :meth:`stop`.

    The callbacks open it at the start of a training step and close it at the end, so
    the count covers forward, backward and optimiser kernels of a real step.
    """

    def __init__(self) -> None:
        _, flop_counter = _import_torch()
        self._mode = flop_counter.FlopCounterMode(display=False)
        self._active = False

    def start(self) -> None:
        """Begin counting (enters the counting mode on this thread)."""
        self._mode.__enter__()
        self._active = True

    def stop(self) -> int:
        """Stop counting and return the FLOPs counted since :meth:`start`."""
        if not self._active:
            return 0
        self._mode.__exit__(None, None, None)
        self._active = False
        return int(self._mode.get_total_flops())

    @property
    def active(self) -> bool:
        """Whether counting is under way."""
        return self._active


def flops_record(
    flops_per_step: float, *, steps: int = 1, samples_per_step: float | None = None,
    flops_total: float | None = None, samples_total: float | None = None,
    source: str = "user", passes: str = "forward", method: str = METHOD,
    details: Mapping[str, Any] | None = None,
) -> dict[str, Any]:  # fmt: skip
    """The ``flops`` field of a run record (see ``Run.record_flops`` for the arguments).

    Totals default to per step × ``steps``.

    Raises:
        InvalidParameterError: A count is negative or not finite, or steps < 0.
    """
    for name, number in (("flops_per_step", flops_per_step), ("flops_total", flops_total),
                         ("samples_per_step", samples_per_step),
                         ("samples_total", samples_total)):  # fmt: skip
        if number is not None and not (0 <= float(number) < float("inf")):
            msg = f"The {name!r} parameter must be a number >= 0. Got {number!r} instead."
            raise InvalidParameterError(msg)
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        msg = f"The 'steps' parameter must be an int >= 0. Got {steps!r} instead."
        raise InvalidParameterError(msg)
    total = flops_total if flops_total is not None else flops_per_step * steps
    samples = samples_total
    if samples is None and samples_per_step is not None:
        samples = samples_per_step * steps
    return {
        "flops_per_step": float(flops_per_step), "steps": steps,
        "flops_total": float(total), "samples_per_step": samples_per_step,
        "samples_total": samples, "passes": passes, "method": method, "source": source,
        **dict(details or {}),
    }  # fmt: skip

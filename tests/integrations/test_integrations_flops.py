from __future__ import annotations

import time

import pytest

import wattwise
from wattwise.exceptions import InvalidParameterError
from wattwise.report import build_report
from wattwise.store import open_store
from wattwise.testing import FakeMeter

torch = pytest.importorskip("torch", reason="PyTorch is not installed (pip install torch)")

pytestmark = pytest.mark.torch


def _mlp() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10))


def test_count_flops_forward_and_backward_by_hand() -> None:
    from wattwise.integrations.flops import count_flops

    model, x = _mlp(), torch.randn(8, 64)
    # forward: 2*8*64*32 + 2*8*32*10 = 32768 + 5120 = 37888 (2 FLOPs per multiply-add)
    fwd = count_flops(model, x)
    assert fwd.flops == 37888 and fwd.passes == "forward" and fwd.batch_size == 8
    assert fwd.by_operator == {"aten.addmm": 37888}
    assert fwd.n_parameters == 64 * 32 + 32 + 32 * 10 + 10
    # backward: weight grads 32768 + 5120, input grad of the 2nd layer 5120 (the input
    # needs no grad) = 43008; forward + backward = 80896
    before = [p.grad for p in model.parameters()]
    both = count_flops(model, x, include_backward=True)
    assert both.flops == 80896 and both.passes == "forward+backward"
    assert [p.grad for p in model.parameters()] == before  # gradients left as they were


def test_count_flops_passes_mappings_as_keywords() -> None:
    from wattwise.integrations.flops import batch_size_of, count_flops

    class Keyed(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = torch.nn.Linear(4, 3)

        def forward(self, features: torch.Tensor) -> torch.Tensor:
            return self.lin(features)

    # 2 * 5 * 4 * 3 = 120
    assert count_flops(Keyed(), {"features": torch.randn(5, 4)}).flops == 120
    assert batch_size_of({"a": [torch.zeros(7, 2)]}) == 7 and batch_size_of([1, 2]) is None
    with pytest.raises(InvalidParameterError, match="include_backward=False"):
        count_flops(Keyed().requires_grad_(False), {"features": torch.randn(5, 4)},
                    include_backward=True)  # fmt: skip


def test_run_count_flops_lands_in_the_record_and_the_report() -> None:
    meter = FakeMeter({"cpu:0": 20.0}, method="model", band_fraction=0.4)
    with wattwise.track("flops", meters=[meter], interval_s=0.05) as run:
        per_call = run.count_flops(_mlp(), torch.randn(8, 64), steps=100)
        end = time.perf_counter() + 0.2
        while time.perf_counter() < end:  # CPU work, so the run has energy to divide by
            pass
    assert per_call == 37888
    record = open_store().get_run(run.id).record["flops"]
    assert record["flops_per_step"] == 37888 and record["steps"] == 100
    assert record["flops_total"] == 3_788_800 and record["samples_total"] == 800
    assert record["method"] == "torch.utils.flop_counter" and record["source"] == "run.count_flops"
    report = build_report(open_store(), run=run.id)
    assert report.headline.flops_total == 3_788_800
    assert report.headline.flops_per_j == pytest.approx(3_788_800 / run.result.energy_j)
    assert report.headline.samples_per_j == pytest.approx(800 / run.result.energy_j)


def test_record_flops_validates() -> None:
    with wattwise.track("v", meters=[FakeMeter({"cpu:0": 1.0})]) as run:
        with pytest.raises(InvalidParameterError, match="'steps' parameter must be an int"):
            run.record_flops(10.0, steps=-1)
        with pytest.raises(InvalidParameterError, match="'flops_per_step' parameter"):
            run.record_flops(float("nan"))
        run.record_flops(1e9, steps=3, flops_total=2.5e9, source="user", method="6*N*D estimate")
    flops = open_store().get_run(run.id).record["flops"]
    assert flops["flops_total"] == 2.5e9 and flops["method"] == "6*N*D estimate"

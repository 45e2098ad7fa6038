"""Apple silicon through IOReport (zeus-apple-silicon's reading shape, faked)."""

from __future__ import annotations

from pathlib import Path

import pytest
from meters_support import EPYC_VM, write_cpuinfo

from wattwise.meters import AppleSiliconMeter, select_meters
from wattwise.meters._registry import MeterContext
from wattwise.testing import ManualClock
from wattwise.testing.fake_ioreport import AppleEnergyMetrics, FakeAppleSilicon, FakeSoc


def test_cpu_dram_gpu_and_neural_engine_are_read_in_joules() -> None:
    clock = ManualClock(10.0)
    soc = FakeSoc(cpu_w=6.0, dram_w=0.8, gpu_w=12.0, gpu_sram_w=0.3, ane_w=1.5)
    meter = AppleSiliconMeter(module=FakeAppleSilicon(soc, clock=clock))
    assert meter.probe().reason == "IOReport energy counters: cpu:0, dram:0, gpu:0, npu:0."
    assert meter.components() == ("cpu", "dram", "gpu", "npu")
    assert meter.read() == {"cpu:0": 0.0, "dram:0": 0.0, "gpu:0": 0.0, "npu:0": 0.0}
    clock.t = 20.0
    assert meter.read() == pytest.approx(
        {"cpu:0": 60.0, "dram:0": 8.0, "gpu:0": 123.0, "npu:0": 15.0}
    )
    clusters = meter.info().details["clusters_mj"]
    assert isinstance(clusters, dict)
    assert set(clusters) == {"efficiency", "performance"}
    assert meter.device_processes() == {"gpu:0": None}  # whole-device attribution


def test_cpu_falls_back_to_the_clusters_when_the_total_channel_is_missing() -> None:
    class NoTotal(FakeAppleSilicon):
        def _metrics(self) -> AppleEnergyMetrics:
            metrics = super()._metrics()
            metrics.cpu_total_mj = None
            return metrics

    clock = ManualClock(0.0)
    meter = AppleSiliconMeter(module=NoTotal(FakeSoc(cpu_w=10.0), clock=clock))
    meter.read()
    clock.t = 1.0
    assert meter.read()["cpu:0"] == pytest.approx(10.0)


def test_a_chip_without_a_neural_engine_channel_has_no_npu() -> None:
    meter = AppleSiliconMeter(module=FakeAppleSilicon(FakeSoc(ane_w=None)))
    assert meter.probe().ok
    assert meter.components() == ("cpu", "dram", "gpu")


def test_components_measured_by_another_meter_are_left_out() -> None:
    context = MeterContext(apple=FakeAppleSilicon(), exclude=frozenset({"gpu"}))
    meter = AppleSiliconMeter.from_context(context)
    assert meter.probe().ok
    assert "gpu:0" not in meter.read()
    assert meter.devices() == []


def test_off_macos_it_says_so_without_importing_anything() -> None:
    import sys

    meter = AppleSiliconMeter()
    state = meter.probe()
    if sys.platform == "darwin":  # pragma: no cover
        pytest.skip("on macOS the real package decides")
    assert not state.ok
    assert state.reason == (
        f"Apple silicon energy (IOReport) exists on macOS only; this is {sys.platform}."
    )
    assert "zeus_apple_silicon" not in sys.modules


def test_refused_subscription_is_explained() -> None:
    meter = AppleSiliconMeter(module=FakeAppleSilicon(fail_subscription=True))
    state = meter.probe()
    assert not state.ok
    assert state.reason == (
        "IOReport refused the energy subscription: Failed to create IOReport subscription."
    )
    assert "Apple silicon (M1 or later)" in state.hint


def test_named_with_the_cpu_model_the_soc_keeps_the_rest(tmp_path: Path) -> None:
    cpuinfo = write_cpuinfo(tmp_path, **EPYC_VM)
    selection = select_meters(["soc-apple", "cpu-model"], apple=FakeAppleSilicon(),
                              cpuinfo_path=cpuinfo)  # fmt: skip
    soc, cpu = selection.meters
    assert soc.components() == ("dram", "gpu", "npu")
    assert cpu.components() == ("cpu",)


def test_the_fake_window_api_matches_the_cumulative_counters() -> None:
    clock = ManualClock(0.0)
    module = FakeAppleSilicon(FakeSoc(gpu_w=4.0), clock=clock)
    monitor = module.AppleEnergyMonitor()
    monitor.begin_window("step")
    with pytest.raises(RuntimeError, match="already exists"):
        monitor.begin_window("step")
    clock.t = 2.5
    window = monitor.end_window("step")
    assert window.gpu_mj == 10_000
    assert isinstance(window.efficiency_cluster_mj, list)

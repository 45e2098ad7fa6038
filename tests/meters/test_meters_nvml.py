from __future__ import annotations

import sys

import pytest
from meters_support import ManualClock, details_list

from wattwise.exceptions import InvalidParameterError, MeterError, MeterUnavailableError
from wattwise.meters import NvmlMeter
from wattwise.testing import fake_nvml
from wattwise.testing.fake_nvml import FakeGpu, FakeNvml


def test_energy_counter_is_used_when_available() -> None:
    clock = ManualClock()
    nvml = FakeNvml([FakeGpu(energy_mj=lambda t: 1_000_000 + int(250_000 * t))], clock=clock)
    meter = NvmlMeter(nvml=nvml, clock=clock)
    assert meter.probe().ok
    assert meter.read() == {"gpu:0": 0.0}
    clock.t = 2.0
    assert meter.read() == {"gpu:0": pytest.approx(500.0)}
    assert meter.info().method == "counter"


def test_power_is_integrated_by_trapezoid_without_energy_counter() -> None:
    clock = ManualClock()
    # the probe takes one sample to see that power works; then 100 W, 200 W, 300 W
    gpu = FakeGpu(energy_mj=None, power_mw=[100_000, 100_000, 200_000, 300_000])
    meter = NvmlMeter(nvml=FakeNvml([gpu], clock=clock), clock=clock)
    assert meter.probe().ok
    assert meter.read() == {"gpu:0": 0.0}  # 100 W at t=0
    clock.t = 1.0
    assert meter.read()["gpu:0"] == pytest.approx((100 + 200) / 2 * 1.0)
    clock.t = 3.0
    assert meter.read()["gpu:0"] == pytest.approx(150.0 + (200 + 300) / 2 * 2.0)
    info = meter.info()
    assert info.method == "sampled"
    assert details_list(info.details, "devices")[0]["method"] == "sampled"


def test_mixed_devices_report_each_method_and_the_weakest_overall() -> None:
    clock = ManualClock()
    gpus = [
        FakeGpu(name="NVIDIA H100 80GB HBM3", energy_mj=lambda t: int(700_000 * t)),
        FakeGpu(name="Tesla P100-PCIE-16GB", energy_mj=None, power_mw=50_000),
    ]
    meter = NvmlMeter(nvml=FakeNvml(gpus, clock=clock), clock=clock)
    meter.read()
    clock.t = 1.0
    assert meter.read() == pytest.approx({"gpu:0": 700.0, "gpu:1": 50.0})
    info = meter.info()
    assert info.method == "sampled"
    methods = [d["method"] for d in details_list(info.details, "devices")]
    assert methods == ["counter", "sampled"]
    assert info.band_fraction is None


def test_details_list_every_device_fact() -> None:
    gpu = FakeGpu(
        name="NVIDIA A100-SXM4-40GB",
        uuid="GPU-1234",
        memory_total_bytes=40 * 1024**3,
        power_limit_mw=400_000,
        energy_mj=lambda t: 0,
    )
    meter = NvmlMeter(nvml=FakeNvml([gpu], driver_version="550.54.15"))
    device = details_list(meter.info().details, "devices")[0]
    assert device == {
        "index": 0,
        "key": "gpu:0",
        "name": "NVIDIA A100-SXM4-40GB",
        "uuid": "GPU-1234",
        "memory_total_mib": 40960,
        "power_limit_w": 400.0,
        "driver_version": "550.54.15",
        "method": "counter",
    }


def test_unsupported_detail_calls_give_none() -> None:
    gpu = FakeGpu(power_limit_mw=None, memory_total_bytes=None, energy_mj=lambda t: 0)
    device = details_list(NvmlMeter(nvml=FakeNvml([gpu])).info().details, "devices")[0]
    assert device["power_limit_w"] is None
    assert device["memory_total_mib"] is None
    assert device["name"] == gpu.name


def test_missing_library_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import pynvml -> ImportError
    availability = NvmlMeter().probe()
    assert not availability.ok
    assert availability.reason == "nvidia-ml-py is not installed."
    assert "pip install 'wattwise[gpu]'" in availability.hint


def test_init_failure_reports_the_nvml_error_string() -> None:
    nvml = FakeNvml([FakeGpu()], init_error=fake_nvml.NVML_ERROR_DRIVER_NOT_LOADED)
    meter = NvmlMeter(nvml=nvml)
    availability = meter.probe()
    assert not availability.ok
    assert availability.reason == "NVML could not be initialised: Driver Not Loaded."
    assert "NVIDIA driver" in availability.hint
    with pytest.raises(MeterUnavailableError, match="Driver Not Loaded"):
        meter.read()


def test_zero_devices_is_unavailable_and_shuts_nvml_down() -> None:
    nvml = FakeNvml([])
    availability = NvmlMeter(nvml=nvml).probe()
    assert not availability.ok
    assert "found no NVIDIA GPU" in availability.reason
    assert nvml.refcount == 0


def test_device_without_energy_or_power_is_skipped() -> None:
    gpus = [FakeGpu(energy_mj=None, power_mw=None), FakeGpu(energy_mj=lambda t: 0)]
    meter = NvmlMeter(nvml=FakeNvml(gpus))
    availability = meter.probe()
    assert availability.ok
    assert "skipped gpu:0" in availability.reason
    assert set(meter.read()) == {"gpu:1"}
    only_bad = NvmlMeter(nvml=FakeNvml([FakeGpu(energy_mj=None, power_mw=None)])).probe()
    assert not only_bad.ok


def test_counter_reset_after_driver_reload_keeps_growing() -> None:
    values = iter([5_000_000, 6_000_000, 7_000_000, 1_000, 3_000])  # mJ
    gpu = FakeGpu(energy_mj=lambda t: next(values))
    meter = NvmlMeter(nvml=FakeNvml([gpu]))
    meter.probe()  # the probe reads the counter once
    assert meter.read() == {"gpu:0": 0.0}
    assert meter.read() == {"gpu:0": pytest.approx(1000.0)}
    assert meter.read() == {"gpu:0": pytest.approx(1001.0)}  # restarted at 0, now 1 J
    assert meter.read() == {"gpu:0": pytest.approx(1003.0)}


def test_lost_gpu_mid_run_raises_meter_error() -> None:
    gpu = FakeGpu(energy_mj=lambda t: 0)
    meter = NvmlMeter(nvml=FakeNvml([gpu]))
    meter.read()
    gpu.lost = True
    with pytest.raises(MeterError, match=r"gpu:0 through NVML failed mid-run: GPU is lost"):
        meter.read()


def test_indices_select_devices_and_out_of_range_is_explained() -> None:
    nvml = FakeNvml([FakeGpu(energy_mj=lambda t: 0), FakeGpu(energy_mj=lambda t: 0)])
    assert set(NvmlMeter(nvml=nvml, indices=[1]).read()) == {"gpu:1"}
    availability = NvmlMeter(nvml=nvml, indices=[3]).probe()
    assert not availability.ok
    assert "GPU indices [3]" in availability.reason
    with pytest.raises(InvalidParameterError, match="'indices' parameter of NvmlMeter"):
        NvmlMeter(nvml=nvml, indices=[-1])


def test_close_shuts_nvml_down_once() -> None:
    nvml = FakeNvml([FakeGpu(energy_mj=lambda t: 0)])
    meter = NvmlMeter(nvml=nvml)
    meter.probe()
    assert nvml.refcount == 1
    meter.close()
    meter.close()
    assert nvml.refcount == 0
    assert nvml.shutdown_calls == 1


def test_no_permission_is_flagged() -> None:
    meter = NvmlMeter(nvml=FakeNvml([FakeGpu()], init_error=fake_nvml.NVML_ERROR_NO_PERMISSION))
    assert not meter.probe().ok
    assert meter.is_permission_denied

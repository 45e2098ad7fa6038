"""The meter contract suite (wattwise.testing.meter_contract) over every built-in meter.

Fakes only where this machine lacks the hardware: a powercap tree in a temporary folder for
RAPL, ``fake_nvml`` for NVIDIA (energy counter and power sampling), ``fake_amdsmi`` for AMD,
``fake_ioreport`` for Apple silicon. The CPU and DRAM models run on a scripted clock and
busy-time source.
"""

from __future__ import annotations

from collections import namedtuple
from pathlib import Path
from typing import Any

import pytest
from meters_support import EPYC_VM, make_zone, set_energy, write_cpuinfo

from wattwise.meters import (
    AmdSmiMeter,
    AppleSiliconMeter,
    BaseMeter,
    CpuModelMeter,
    DramModelMeter,
    NvmlMeter,
    RaplMeter,
)
from wattwise.testing import ManualClock, fake_amdsmi, fake_nvml
from wattwise.testing.fake_amdsmi import FakeAmdGpu, FakeAmdSmi
from wattwise.testing.fake_ioreport import FakeAppleSilicon, FakeSoc
from wattwise.testing.fake_nvml import FakeGpu, FakeNvml
from wattwise.testing.meter_contract import MeterContract

Times = namedtuple("Times", "user system idle")


class TestRaplContract(MeterContract):
    package_w = 40.0
    dram_w = 6.0

    @pytest.fixture(autouse=True)
    def _tree(self, tmp_path: Path) -> None:
        self.tmp = tmp_path
        self.t = 0.0
        self.trees: list[tuple[Path, Path, int]] = []

    def _make(self, name: str, max_range_uj: int) -> RaplMeter:
        root = self.tmp / name
        pkg = make_zone(root, "intel-rapl:0", "package-0", energy_uj=5, max_range_uj=max_range_uj)
        dram = make_zone(pkg, "intel-rapl:0:0", "dram", energy_uj=7, max_range_uj=max_range_uj)
        self.trees.append((pkg, dram, max_range_uj))
        return RaplMeter(root)

    def make_meter(self) -> BaseMeter:
        return self._make(f"pc{len(self.trees)}", 262_143_328_850)

    def advance(self, seconds: float) -> None:
        self.t += seconds
        for pkg, dram, max_range in self.trees:
            set_energy(pkg, (5 + int(self.package_w * self.t * 1e6)) % (max_range + 1))
            set_energy(dram, (7 + int(self.dram_w * self.t * 1e6)) % (max_range + 1))

    def make_unavailable(self) -> BaseMeter:
        return RaplMeter(self.tmp / "absent")

    def make_broken(self) -> BaseMeter:
        def fail(path: Path) -> str:
            msg = "unexpected sysfs failure"
            raise RuntimeError(msg)

        make_zone(self.tmp / "broken", "intel-rapl:0", "package-0", energy_uj=1)
        return RaplMeter(self.tmp / "broken", read_file=fail)

    def make_wrapping(self) -> BaseMeter:
        # a 100 J range wraps every 2.2 s at 46 W: every step of 2 s crosses it at least once
        # in one of the two domains
        return self._make("wrap", 100_000_000)

    def wrap_expected_j(self, seconds: float) -> float:
        return (self.package_w + self.dram_w) * seconds


class TestNvmlCounterContract(MeterContract):
    def setup_method(self) -> None:
        self.clock = ManualClock(10.0)

    def _gpus(self, energy: Any) -> list[FakeGpu]:
        return [
            FakeGpu(name="NVIDIA H100 80GB HBM3", energy_mj=energy, architecture=9),
            FakeGpu(name="NVIDIA H100 80GB HBM3", energy_mj=energy, architecture=9),
        ]

    def make_meter(self) -> BaseMeter:
        nvml = FakeNvml(self._gpus(lambda t: int(300_000 * t)), clock=self.clock)
        return NvmlMeter(nvml=nvml, clock=self.clock)

    def advance(self, seconds: float) -> None:
        self.clock.t += seconds

    def make_unavailable(self) -> BaseMeter:
        return NvmlMeter(nvml=FakeNvml([], init_error=fake_nvml.NVML_ERROR_DRIVER_NOT_LOADED))

    def make_broken(self) -> BaseMeter:
        nvml = FakeNvml([FakeGpu()])
        nvml.nvmlInit = _raise_runtime  # type: ignore[method-assign]
        return NvmlMeter(nvml=nvml)

    def make_wrapping(self) -> BaseMeter:
        # the driver reloads at t = 15 s: the counter restarts from zero
        def energy(t: float) -> int:
            return int(300_000 * (t - 15.0 if t >= 15.0 else t))

        return NvmlMeter(nvml=FakeNvml(self._gpus(energy), clock=self.clock), clock=self.clock)


class TestNvmlSampledContract(MeterContract):
    """A GPU without an energy counter (pre-Volta, Jetson, some vGPU): power sampling."""

    def setup_method(self) -> None:
        self.clock = ManualClock(0.0)

    def make_meter(self) -> BaseMeter:
        gpus = [
            FakeGpu(name="Tesla P100-PCIE-16GB", energy_mj=None, architecture=4,
                    power_mw=lambda t: 150_000 + int(1000 * t)),
            FakeGpu(name="NVIDIA GB10", energy_mj=None, architecture=10, power_mw=40_000),
        ]  # fmt: skip
        return NvmlMeter(nvml=FakeNvml(gpus, clock=self.clock), clock=self.clock)

    def advance(self, seconds: float) -> None:
        self.clock.t += seconds

    def make_unavailable(self) -> BaseMeter:
        # a GPU with neither counter nor a non-zero power reading is never reported as 0 W
        gpus = [FakeGpu(energy_mj=None, power_mw=0)]
        return NvmlMeter(nvml=FakeNvml(gpus, clock=self.clock), clock=self.clock)


class TestAmdCounterContract(MeterContract):
    def setup_method(self) -> None:
        self.clock = ManualClock(5.0)

    def _amdsmi(self, energy: Any) -> FakeAmdSmi:
        gpus = [
            FakeAmdGpu(energy_uj=energy, average_power_w=lambda t: 500.0),
            FakeAmdGpu(energy_uj=energy, average_power_w=lambda t: 500.0),
        ]
        return FakeAmdSmi(gpus, clock=self.clock)

    def make_meter(self) -> BaseMeter:
        return AmdSmiMeter(amdsmi=self._amdsmi(lambda t: 500e6 * t), clock=self.clock)

    def advance(self, seconds: float) -> None:
        self.clock.t += seconds

    def make_unavailable(self) -> BaseMeter:
        return AmdSmiMeter(
            amdsmi=FakeAmdSmi([], init_error=fake_amdsmi.AMDSMI_STATUS_DRIVER_NOT_LOADED)
        )

    def make_broken(self) -> BaseMeter:
        amdsmi = FakeAmdSmi([FakeAmdGpu()])
        amdsmi.amdsmi_init = _raise_runtime  # type: ignore[method-assign]
        return AmdSmiMeter(amdsmi=amdsmi)

    def make_wrapping(self) -> BaseMeter:
        def energy(t: float) -> float:  # driver reload at t = 9 s
            return 500e6 * (t - 9.0 if t >= 9.0 else t)

        return AmdSmiMeter(amdsmi=self._amdsmi(energy), clock=self.clock)


class TestAmdSampledContract(MeterContract):
    """An AMD GPU whose energy counter is absent: average power sampled."""

    def setup_method(self) -> None:
        self.clock = ManualClock(0.0)

    def make_meter(self) -> BaseMeter:
        gpus = [FakeAmdGpu(energy_uj=None, average_power_w=lambda t: 300.0 + t)]
        return AmdSmiMeter(amdsmi=FakeAmdSmi(gpus, clock=self.clock), clock=self.clock)

    def advance(self, seconds: float) -> None:
        self.clock.t += seconds

    def make_unavailable(self) -> BaseMeter:
        return AmdSmiMeter(amdsmi=FakeAmdSmi([FakeAmdGpu(energy_uj=None)], clock=self.clock))


class TestAppleContract(MeterContract):
    def setup_method(self) -> None:
        self.clock = ManualClock(100.0)
        self.soc = FakeSoc(cpu_w=6.0, dram_w=0.8, gpu_w=12.0, gpu_sram_w=0.3, ane_w=1.5)

    def make_meter(self) -> BaseMeter:
        return AppleSiliconMeter(module=FakeAppleSilicon(self.soc, clock=self.clock))

    def advance(self, seconds: float) -> None:
        self.clock.t += seconds

    def make_unavailable(self) -> BaseMeter:
        return AppleSiliconMeter(module=FakeAppleSilicon(fail_subscription=True))

    def make_broken(self) -> BaseMeter:
        module = FakeAppleSilicon()
        module.AppleEnergyMonitor = _raise_value  # type: ignore[assignment]
        return AppleSiliconMeter(module=module)

    def make_wrapping(self) -> BaseMeter:
        module = FakeAppleSilicon(self.soc, clock=self.clock, reset_at=(104.0,))
        return AppleSiliconMeter(module=module)


class TestCpuModelContract(MeterContract):
    @pytest.fixture(autouse=True)
    def _cpuinfo(self, tmp_path: Path) -> None:
        self.cpuinfo = write_cpuinfo(tmp_path, **EPYC_VM)
        self.clock = ManualClock(50.0)

    def _times(self) -> Times:
        return Times(user=0.6 * self.clock.t, system=0.1 * self.clock.t, idle=self.clock.t)

    def make_meter(self) -> BaseMeter:
        return CpuModelMeter(self.cpuinfo, clock=self.clock, cpu_times=self._times)

    def advance(self, seconds: float) -> None:
        self.clock.t += seconds

    def make_unavailable(self) -> BaseMeter:
        def no_psutil() -> Times:
            msg = "psutil"
            raise ImportError(msg)

        return CpuModelMeter(self.cpuinfo, cpu_times=no_psutil)

    def make_broken(self) -> BaseMeter:
        return CpuModelMeter(self.cpuinfo, cpu_times=_raise_runtime)


class TestDramModelContract(MeterContract):
    def setup_method(self) -> None:
        self.clock = ManualClock(0.0)

    def make_meter(self) -> BaseMeter:
        return DramModelMeter(64 * 2**30, clock=self.clock)

    def advance(self, seconds: float) -> None:
        self.clock.t += seconds


def _raise_runtime(*args: object) -> Any:
    msg = "unexpected backend failure"
    raise RuntimeError(msg)


def _raise_value(*args: object) -> Any:
    msg = "unexpected backend failure"
    raise ValueError(msg)

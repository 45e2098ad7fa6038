"""Power sampling for GPUs without an energy counter (Yang et al., SC'24 practices)."""

from __future__ import annotations

import threading
import time

import pytest

from wattwise.meters import NvmlMeter
from wattwise.meters._sampling import PowerIntegrator, band_from_coverage
from wattwise.testing import ManualClock
from wattwise.testing.fake_nvml import NVML_DEVICE_ARCH_HOPPER, FakeGpu, FakeNvml


def test_averaged_readings_are_placed_at_the_centre_of_their_window() -> None:
    """A step from 100 W to 300 W at t = 10 s, seen through a 1 s trailing average."""
    clock = ManualClock(0.0)

    def averaged(t: float) -> float:  # the sensor's 1 s boxcar over the true step
        if t <= 10.0:
            return 100.0
        if t >= 11.0:
            return 300.0
        return 100.0 + 200.0 * (t - 10.0)

    integrator = PowerIntegrator(lambda: averaged(clock()), window_s=1.0, poll_interval_s=None,
                                 clock=clock)  # fmt: skip
    for step in range(0, 201):  # every 0.1 s from 0 to 20 s
        clock.t = step / 10
        integrator.sample()
    # readings cover [-0.5, 19.5] after the shift: the true signal's energy over that span
    true = 100.0 * (10.0 + 0.5) + 300.0 * (19.5 - 10.0)
    assert integrator.energy_j == pytest.approx(true, rel=1e-9)
    assert integrator.coverage() == pytest.approx(1.0)
    assert band_from_coverage(integrator.coverage()) is None


def test_sparse_polling_leaves_time_unobserved_and_the_band_says_how_much() -> None:
    clock = ManualClock(0.0)
    integrator = PowerIntegrator(lambda: 200.0, window_s=1.0, poll_interval_s=None, clock=clock)
    for t in (0.0, 4.0, 8.0):  # one 1 s window every 4 s
        clock.t = t
        integrator.sample()
    # covered: [-1, 0], [3, 4], [7, 8] = 3 s of the 9 s from the first window's start
    assert integrator.coverage() == pytest.approx(3.0 / 9.0)
    assert band_from_coverage(integrator.coverage()) == pytest.approx(round(1 - 3.0 / 9.0, 4))
    assert integrator.planned_coverage() == 1.0  # no interval configured: read at will


def test_zero_readings_are_not_samples() -> None:
    clock = ManualClock(0.0)
    readings = iter([100.0, 0.0, 0.0, 100.0])
    integrator = PowerIntegrator(lambda: next(readings), window_s=None, poll_interval_s=None,
                                 clock=clock)  # fmt: skip
    for t in (0.0, 1.0, 2.0, 3.0):
        clock.t = t
        integrator.sample()
    assert integrator.energy_j == pytest.approx(300.0)  # not 100 W dropping to 0 W
    assert integrator.stats()["zero_readings"] == 2
    assert integrator.coverage() is None  # instantaneous readings: unknown


def test_the_background_reader_samples_between_reads_and_stops() -> None:
    calls: list[float] = []
    lock = threading.Lock()

    def read_w() -> float:
        with lock:
            calls.append(time.monotonic())
        return 50.0

    integrator = PowerIntegrator(read_w, window_s=None, poll_interval_s=0.01)
    integrator.sample()
    integrator.start()
    deadline = time.monotonic() + 60.0  # a loaded machine reads late
    while len(calls) < 6 and time.monotonic() < deadline:
        time.sleep(0.01)
    integrator.stop()
    assert len(calls) >= 6
    n = len(calls)
    time.sleep(0.05)
    assert len(calls) == n  # stopped
    assert integrator.energy_j > 0


def test_a_failing_reading_in_the_background_never_escapes() -> None:
    def broken() -> float:
        msg = "sensor gone"
        raise RuntimeError(msg)

    integrator = PowerIntegrator(broken, window_s=1.0, poll_interval_s=0.005)
    integrator.start()
    deadline = time.monotonic() + 60.0  # a loaded machine reads late
    while integrator.stats()["failed_readings"] == 0 and time.monotonic() < deadline:
        time.sleep(0.005)
    integrator.stop()
    assert integrator.stats()["failed_readings"] >= 1
    assert isinstance(integrator.last_error, RuntimeError)


class StuckSensor:
    """A device whose background read blocks until the test releases it (a stuck driver);
    the first read (the caller's own ``sample()``) answers at once. 100 W throughout."""

    def __init__(self) -> None:
        self.reads = 0
        self.entered = threading.Event()
        self.release = threading.Event()
        self.reader: threading.Thread | None = None

    def read_w(self) -> float:
        self.reads += 1
        if self.reads > 1 and not self.release.is_set():
            self.reader = threading.current_thread()
            self.entered.set()
            self.release.wait(120.0)
        return 100.0


def _stop_within(integrator: PowerIntegrator, deadline_s: float) -> None:
    """``stop()`` on a thread of its own: it must return while the read is still stuck."""
    stopper = threading.Thread(target=integrator.stop)
    stopper.start()
    stopper.join(deadline_s)
    assert not stopper.is_alive(), "stop() waited for a stuck read"


def test_a_reading_that_comes_after_stop_is_not_integrated() -> None:
    sensor = StuckSensor()
    clock = ManualClock(0.0)
    integrator = PowerIntegrator(sensor.read_w, window_s=None, poll_interval_s=0.01,
                                 clock=clock)  # fmt: skip
    integrator.sample()  # the first reading, at t = 0
    integrator.start()
    try:
        assert sensor.entered.wait(60.0)  # the background read is in progress, stuck
        clock.t = 10.0  # 10 s pass before it returns: 1 kJ if it were integrated
        _stop_within(integrator, 60.0)
        before = integrator.stats()
    finally:
        sensor.release.set()  # the late reading comes now, after stop() returned
    assert sensor.reader is not None
    sensor.reader.join(60.0)  # the stopped reader has had its late reading, and ended
    assert not sensor.reader.is_alive() and sensor.reads == 2
    assert integrator.energy_j == 0.0 and integrator.stats() == before
    assert before["samples"] == 1 and before["failed_readings"] == 0


def test_a_stopped_reader_stays_stopped_when_a_new_one_starts() -> None:
    """The meter starts its reader again at the next read: a late reading of the old one is
    still dropped, and the new one reads."""
    sensor = StuckSensor()
    integrator = PowerIntegrator(sensor.read_w, window_s=None, poll_interval_s=0.01)
    integrator.sample()
    integrator.start()
    try:
        assert sensor.entered.wait(60.0)
        _stop_within(integrator, 60.0)
        old = sensor.reader
        sensor.release.set()  # reads answer at once from now on
        integrator.start()  # a new reader
        deadline = time.monotonic() + 60.0  # a loaded machine reads late
        while integrator.stats()["samples"] < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert integrator.stats()["samples"] >= 3  # the new reader reads
        assert old is not None
        old.join(60.0)  # the old one ended after its late read, the new one still running
        assert not old.is_alive()
    finally:
        sensor.release.set()
        integrator.stop()


def test_nvml_sampled_band_comes_from_coverage_and_the_part_time_sensor() -> None:
    clock = ManualClock(0.0)
    gpus = [FakeGpu(name="NVIDIA H100 PCIe", energy_mj=None, power_mw=300_000,
                    architecture=NVML_DEVICE_ARCH_HOPPER)]  # fmt: skip
    meter = NvmlMeter(nvml=FakeNvml(gpus, clock=clock), clock=clock, poll_interval_s=0.1)
    assert meter.probe().ok
    info = meter.info()
    # polled faster than the 1 s window: full polling coverage, times the 25 % the H100
    # sensor observes (Yang et al.): 75 % of the energy rests on interpolation
    assert info.band_fraction == 0.75
    assert "Yang et al." in info.band_source
    assert "interpolation" in info.band_meaning
    meter.close()


def test_nvml_instantaneous_sensor_has_no_band_and_says_why() -> None:
    gpus = [FakeGpu(name="Tesla P100-PCIE-16GB", energy_mj=None, architecture=4)]
    meter = NvmlMeter(nvml=FakeNvml(gpus))
    assert meter.probe().ok
    info = meter.info()
    assert info.band_fraction is None
    assert info.band_source.startswith("No band: gpu:0 report(s) instantaneous power")


def test_nvml_gpu_reading_0_w_is_skipped_with_the_reason() -> None:
    gpus = [FakeGpu(energy_mj=None, power_mw=0), FakeGpu(energy_mj=lambda t: 0)]
    meter = NvmlMeter(nvml=FakeNvml(gpus))
    state = meter.probe()
    assert state.ok
    assert "gpu:0 (no energy counter, and its power reading is 0 W" in state.reason
    assert set(meter.read()) == {"gpu:1"}


def test_poll_interval_is_checked() -> None:
    from wattwise.exceptions import InvalidParameterError

    with pytest.raises(InvalidParameterError, match="'poll_interval_s' parameter of NvmlMeter"):
        NvmlMeter(poll_interval_s=0.0)


def test_force_sampled_samples_a_gpu_that_has_a_counter() -> None:
    clock = ManualClock(0.0)
    gpus = [FakeGpu(energy_mj=lambda t: int(1e6 * t), power_mw=250_000)]
    meter = NvmlMeter(nvml=FakeNvml(gpus, clock=clock), clock=clock, force_sampled=True)
    assert meter.probe().reason == "NVML reports gpu:0 sampled."
    meter.read()
    clock.t = 2.0
    assert meter.read() == {"gpu:0": pytest.approx(500.0)}

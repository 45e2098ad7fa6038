"""AMD GPUs through amdsmi: counter with its resolution, power sampling where the counter is
absent or invalid, MI250 dies, per-process lists, errors."""

from __future__ import annotations

import importlib.util

import pytest

from wattwise.exceptions import MeterPermissionError
from wattwise.meters import AmdSmiMeter, select_meters
from wattwise.testing import ManualClock, fake_amdsmi
from wattwise.testing.fake_amdsmi import FakeAmdGpu, FakeAmdSmi


def test_energy_is_count_times_resolution_in_joules() -> None:
    clock = ManualClock(1.0)
    gpu = FakeAmdGpu(energy_uj=lambda t: 560e6 * t, counter_resolution=15.3)
    meter = AmdSmiMeter(amdsmi=FakeAmdSmi([gpu], clock=clock), clock=clock)
    assert meter.probe().ok
    assert meter.read() == {"gpu:0": 0.0}
    clock.t = 3.0
    # the fake's accumulator is int(energy / resolution): the meter multiplies it back
    expected = (int(560e6 * 3.0 / 15.3) - int(560e6 * 1.0 / 15.3)) * 15.3 / 1e6
    assert meter.read()["gpu:0"] == pytest.approx(expected)
    assert meter.read()["gpu:0"] == pytest.approx(1120.0, rel=1e-6)
    info = meter.info()
    assert info.method == "counter"
    assert info.details["devices"][0]["counter_resolution_uj"] == 15.3  # type: ignore[index]


def test_amdsmi_before_6_2_1_named_the_count_power() -> None:
    clock = ManualClock(0.0)
    amdsmi = FakeAmdSmi([FakeAmdGpu(energy_uj=lambda t: 1e6 + 100e6 * t)], clock=clock,
                        legacy_energy_key=True)  # fmt: skip
    meter = AmdSmiMeter(amdsmi=amdsmi, clock=clock)
    meter.read()
    clock.t = 2.0
    assert meter.read()["gpu:0"] == pytest.approx(200.0, rel=1e-6)


def test_a_counter_stuck_at_zero_is_not_trusted_and_power_is_sampled() -> None:
    clock = ManualClock(0.0)
    gpu = FakeAmdGpu(energy_uj=lambda t: 0.0, average_power_w=lambda t: 250.0)
    meter = AmdSmiMeter(amdsmi=FakeAmdSmi([gpu], clock=clock), clock=clock)
    assert meter.probe().reason == "amdsmi reports gpu:0 sampled."
    meter.read()
    clock.t = 4.0
    assert meter.read() == {"gpu:0": pytest.approx(1000.0)}
    info = meter.info()
    assert info.method == "sampled"
    assert info.band_fraction is None
    assert "does not state the averaging window" in info.band_source
    notes = info.details["notes"]
    assert isinstance(notes, list)
    assert "ROCm/amdsmi issue #38" in notes[0]


def test_mi250_second_die_is_recorded_as_covered_by_the_first() -> None:
    clock = ManualClock(0.0)
    gpus = [
        FakeAmdGpu(market_name="AMD Instinct MI250X", energy_uj=lambda t: 1e6 + 500e6 * t,
                   processes=[(10, 1000)]),
        FakeAmdGpu(market_name="AMD Instinct MI250X", energy_uj=lambda t: 0.0,
                   processes=[(11, 3000)]),
    ]  # fmt: skip
    meter = AmdSmiMeter(amdsmi=FakeAmdSmi(gpus, clock=clock), clock=clock)
    state = meter.probe()
    assert state.ok
    assert (
        "gpu:1 (second die of the MI250/MI250X package; its power is reported with gpu:0's)"
        in (state.reason)
    )
    assert set(meter.read()) == {"gpu:0"}
    device = meter.devices()[0]
    assert device["covers_dies"] == [0, 1]
    # attribution sees the processes of both dies on the package's key
    assert meter.device_processes() == {"gpu:0": {10: 1000, 11: 3000}}


def test_processes_for_attribution_and_none_where_unlisted() -> None:
    gpus = [
        FakeAmdGpu(energy_uj=lambda t: 1e6, processes=[(42, 2**30), (43, 2**29)]),
        FakeAmdGpu(energy_uj=lambda t: 1e6, processes=None),
    ]
    meter = AmdSmiMeter(amdsmi=FakeAmdSmi(gpus))
    assert meter.probe().ok
    assert meter.device_processes() == {"gpu:0": {42: 2**30, 43: 2**29}, "gpu:1": None}


def test_no_permission_is_a_permission_error_when_named() -> None:
    amdsmi = FakeAmdSmi([FakeAmdGpu()], init_error=fake_amdsmi.AMDSMI_STATUS_NO_PERM)
    meter = AmdSmiMeter(amdsmi=amdsmi)
    state = meter.probe()
    assert not state.ok
    assert "'render' and 'video' groups" in state.hint
    assert meter.permission_denied
    with pytest.raises(MeterPermissionError, match="Permission Denied"):
        meter.read()


def test_a_gpu_that_reports_nothing_is_never_0_w() -> None:
    gpus = [FakeAmdGpu(energy_uj=None), FakeAmdGpu(energy_uj=lambda t: 5e6)]
    meter = AmdSmiMeter(amdsmi=FakeAmdSmi(gpus))
    state = meter.probe()
    assert state.reason == (
        "amdsmi reports gpu:1 counter; skipped gpu:0 (reports neither energy nor power "
        "(0 W or N/A))."
    )
    assert set(meter.read()) == {"gpu:1"}


@pytest.mark.skipif(importlib.util.find_spec("amdsmi") is None, reason="amdsmi not installed")
def test_installed_amdsmi_without_rocm_is_explained_without_printing(
    capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ROCM_PATH", raising=False)
    monkeypatch.delenv("ROCM_HOME", raising=False)
    meter = AmdSmiMeter()
    state = meter.probe()
    if state.ok:  # pragma: no cover - a machine with ROCm and an AMD GPU
        pytest.skip("ROCm is installed here")
    assert "libamd_smi.so" in state.reason or "no AMD GPU" in state.reason
    assert state.hint
    out, err = capfd.readouterr()
    assert out == "" and err == ""


def test_named_selection_uses_the_fake_and_shuts_it_down() -> None:
    amdsmi = FakeAmdSmi([FakeAmdGpu(energy_uj=lambda t: 1e6)])
    selection = select_meters(["gpu-amdsmi"], amdsmi=amdsmi)
    assert [m.name for m in selection.meters] == ["gpu-amdsmi"]
    selection.close()
    assert amdsmi.initialised == 0

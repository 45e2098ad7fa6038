from __future__ import annotations

import pytest
from meters_support import ManualClock, data_rows

from wattwise.exceptions import InvalidParameterError
from wattwise.meters import DramModelMeter


def _calibrated_w_per_gb() -> float:
    rows = data_rows("calibration/specpower_coefficients.csv")
    return next(float(r["idle"]) for r in rows if r["kind"] == "dram")


def test_energy_is_gib_times_w_per_gb_times_time() -> None:
    clock = ManualClock(50.0)
    meter = DramModelMeter(total_bytes=64 * 2**30, clock=clock)
    assert meter.probe().ok
    assert meter.read() == {"dram:0": 0.0}
    clock.t = 60.0
    assert meter.read()["dram:0"] == pytest.approx(64 * _calibrated_w_per_gb() * 10.0)
    clock.t = 110.0
    assert meter.read()["dram:0"] == pytest.approx(64 * _calibrated_w_per_gb() * 60.0)


def test_info_cites_the_calibration_and_records_the_alternatives() -> None:
    info = DramModelMeter(total_bytes=8 * 2**30).info()
    assert info.name == "dram-model"
    assert info.method == "model"
    assert info.details["w_per_gb"] == _calibrated_w_per_gb()
    assert info.details["power_w"] == pytest.approx(8 * _calibrated_w_per_gb())
    assert any("0.392 W/GB" in a and "0.3725 W/GB" in a for a in info.assumptions)
    band = next(
        r
        for r in data_rows("calibration/specpower_bands.csv")
        if (r["rule_class"], r["load_range"]) == ("arch-specpower-recent", "all")
    )
    assert info.band_fraction == float(band["band_fraction"])
    assert "Memory alone is not measured by SPECpower" in info.band_meaning


def test_memory_size_defaults_to_the_machine() -> None:
    meter = DramModelMeter()
    assert meter.probe().ok
    assert meter.total_bytes > 0


@pytest.mark.parametrize("bad", [0, -5, 1.5, True])
def test_bad_memory_size_is_rejected(bad: object) -> None:
    with pytest.raises(InvalidParameterError, match="'total_bytes' parameter of DramModelMeter"):
        DramModelMeter(total_bytes=bad)  # type: ignore[arg-type]

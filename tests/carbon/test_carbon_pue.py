from __future__ import annotations

import csv
import io
from importlib import resources
from typing import Any

import pytest

from wattwise.carbon import Intensity, Pue, operational_co2e_g, parse_region, pue_for
from wattwise.exceptions import InvalidParameterError


def _pue_rows() -> list[dict[str, str]]:
    text = resources.files("wattwise.data").joinpath("pue/pue_reference_values.csv")
    return list(csv.DictReader(io.StringIO(text.read_text(encoding="utf-8"))))


def test_own_hardware_counts_no_overhead() -> None:
    pue = pue_for(parse_region("FR"))
    assert pue.value == 1.0
    assert pue.applies_to == "own hardware"
    assert "CodeCarbon" in pue.source
    assert "pue_reference_values.csv" in pue.source


@pytest.mark.parametrize("provider", ["gcp", "aws", "azure"])
def test_cloud_uses_the_latest_provider_fleet_row(provider: str) -> None:
    region = {"gcp": "europe-west1", "aws": "us-east-1", "azure": "westeurope"}[provider]
    pue = pue_for(parse_region(f"{provider}:{region}"))
    fleet = [
        r for r in _pue_rows() if r["scope"] == "provider_fleet" and r["provider"] == provider
    ]
    latest = max(fleet, key=lambda r: int(r["vintage"]) if r["vintage"].isdigit() else 0)
    assert pue.value == float(latest["pue"])
    assert pue.applies_to == provider
    assert f"provider={provider}" in pue.source
    assert latest["vintage"] in pue.source


def test_override_wins() -> None:
    pue = pue_for(parse_region("gcp:europe-west1"), override=1.3)
    assert (pue.value, pue.source, pue.applies_to) == (1.3, "user", "gcp")


@pytest.mark.parametrize(
    ("bad", "shown"),
    [(0.5, "0.5"), (float("nan"), "nan"), (True, "True"), ("1.2", "'1.2'")],
)
def test_bad_override_message(bad: Any, shown: str) -> None:
    with pytest.raises(InvalidParameterError) as info:
        pue_for(parse_region("FR"), override=bad)
    assert str(info.value) == f"The 'pue' parameter must be a float >= 1.0. Got {shown} instead."


def _intensity(g_per_kwh: float) -> Intensity:
    return Intensity(
        g_per_kwh=g_per_kwh,
        intensity_type="average",
        scope="lifecycle",
        year=2025,
        dataset="test",
        file=None,
        zone="FR",
        temporal_granularity="annual",
        source="test",
        licence="test",
    )


def test_operational_co2e_arithmetic() -> None:
    # 7.2 MJ = 2 kWh; x PUE 1.5 = 3 kWh; x 100 g/kWh = 300 g.
    assert operational_co2e_g(7.2e6, _intensity(100.0), Pue(1.5, "test", "own hardware")) == (
        pytest.approx(300.0)
    )
    assert operational_co2e_g(0.0, _intensity(100.0), Pue(1.0, "test", "own hardware")) == 0.0


def test_operational_co2e_rejects_negative_energy() -> None:
    with pytest.raises(InvalidParameterError, match=r"The 'energy_j' parameter must"):
        operational_co2e_g(-1.0, _intensity(100.0), Pue(1.0, "test", "own hardware"))

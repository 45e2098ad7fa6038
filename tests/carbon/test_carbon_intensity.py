"""Intensity lookups, checked against the shipped files read here with plain csv/json."""

from __future__ import annotations

import csv
import io
import json
from importlib import resources
from typing import Any

import pytest

from wattwise.carbon import Intensity, datasets, intensity_for, parse_region
from wattwise.exceptions import InvalidParameterError

DATA = resources.files("wattwise.data")
EM25 = "grid/electricitymaps_yearly_2025_lifecycle.json"
EM24 = "grid/electricitymaps_yearly_2024.csv"
GA = "grid/greenalgorithms_CI_aggregated.csv"
EMBER = "grid/ember_average_intensities.json"
OWID = "grid/owid_global_energy_mix.json"


def _json(relpath: str) -> Any:
    return json.loads(DATA.joinpath(relpath).read_text(encoding="utf-8"))


def _csv(relpath: str, skip: int = 0) -> list[dict[str, str]]:
    lines = io.StringIO(DATA.joinpath(relpath).read_text(encoding="utf-8-sig"))
    for _ in range(skip):
        lines.readline()
    return list(csv.DictReader(lines))


def em2025(zone: str) -> float:
    return float(_json(EM25)[zone]["carbonIntensity"]["value"])


def em2024(zone: str, scope: str) -> float:
    row = next(r for r in _csv(EM24) if r["Zone id"] == zone)
    column = "(direct)" if scope == "direct" else "(Life cycle)"
    return float(next(v for k, v in row.items() if k.endswith(column)))


def ga(location: str) -> float:
    return float(next(r for r in _csv(GA, skip=1) if r["location"] == location)["carbonIntensity"])


def ember(key: str) -> dict[str, Any]:
    entry: dict[str, Any] = _json(EMBER)[key]
    return entry


@pytest.mark.parametrize("zone", ["FR", "US-CAL-CISO", "CA-QC", "DK-DK1"])
def test_lifecycle_comes_from_electricity_maps_2025(zone: str) -> None:
    found = intensity_for(parse_region(zone))
    assert found.g_per_kwh == em2025(zone)
    assert found.scope == "lifecycle"
    assert found.year == 2025
    assert found.file == EM25
    assert found.zone == zone
    assert found.dataset == "Electricity Maps yearly 2025 (via co2.js)"
    assert found.licence == "ODbL-1.0"
    assert found.intensity_type == "average"
    assert found.temporal_granularity == "annual"
    assert found.note is None


@pytest.mark.parametrize("zone", ["FR", "US-CAL-CISO", "CA-QC"])
def test_direct_comes_from_the_2024_direct_column(zone: str) -> None:
    found = intensity_for(parse_region(zone), scope="direct")
    assert found.g_per_kwh == em2024(zone, "direct")
    assert found.scope == "direct"
    assert found.year == 2024
    assert found.file == EM24
    assert "Electricity Maps (2025)" in found.source


def test_direct_and_lifecycle_differ_and_are_labelled() -> None:
    location = parse_region("FR")
    lifecycle = intensity_for(location, scope="lifecycle")
    direct = intensity_for(location, scope="direct")
    assert (lifecycle.scope, direct.scope) == ("lifecycle", "direct")
    assert direct.g_per_kwh < lifecycle.g_per_kwh
    assert em2024("FR", "direct") < em2024("FR", "lifecycle")


def test_green_algorithms_answers_a_state_electricity_maps_lacks() -> None:
    location = parse_region("US-VA")
    found = intensity_for(location, scope="direct")
    assert found.g_per_kwh == ga("US-VA")
    assert found.zone == "US-VA"
    assert found.scope == "direct"
    assert found.year == 2020  # "data from 2020" in the row's source
    assert found.file == GA
    assert found.licence == "CC-BY-4.0"
    assert "Green Algorithms" in found.source


def test_lifecycle_request_never_takes_the_direct_state_figure() -> None:
    found = intensity_for(parse_region("US-VA"))
    assert found.scope == "lifecycle"
    assert found.zone == "US"
    assert found.g_per_kwh == em2025("US")
    assert found.note is not None
    assert "US-VA" in found.note
    assert f"direct figure ({ga('US-VA'):g}" in found.note
    assert "country average" in found.note


def test_country_only_in_ember() -> None:
    assert "UA" not in _json(EM25)
    found = intensity_for(parse_region("UA"))
    expected = ember("UKR")
    assert found.g_per_kwh == expected["emissions_intensity_gco2_per_kwh"]
    assert found.year == expected["year"]
    assert found.file == EMBER
    assert found.scope == "lifecycle"
    assert found.licence == "CC-BY-SA-4.0"


def test_country_only_in_owid() -> None:
    assert "BMU" not in _json(EMBER)
    found = intensity_for(parse_region("BM"))
    expected = _json(OWID)["BMU"]
    assert found.g_per_kwh == expected["carbon_intensity"]
    assert found.year == expected["year"]
    assert found.file == OWID


def test_direct_request_skips_lifecycle_only_datasets_and_says_so() -> None:
    found = intensity_for(parse_region("UA"), scope="direct")
    assert found.scope == "direct"
    assert found.zone == "WORLD"
    assert found.g_per_kwh == ga("WORLD")
    assert found.note is not None
    assert "Ember has only a life-cycle figure" in found.note
    assert "world average" in found.note


def test_world_lifecycle_is_ember_world() -> None:
    found = intensity_for(parse_region("WORLD"))
    assert found.g_per_kwh == ember("World")["emissions_intensity_gco2_per_kwh"]
    assert found.year == ember("World")["year"]
    assert found.scope == "lifecycle"
    assert found.zone == "WORLD"


def test_world_direct_is_the_iea_2019_figure() -> None:
    found = intensity_for(parse_region("WORLD"), scope="direct")
    assert found.g_per_kwh == ga("WORLD")
    assert found.year == 2019
    assert "IEA" in found.source


def test_cloud_region_uses_its_zone_and_notes_the_provider_figure() -> None:
    found = intensity_for(parse_region("gcp:europe-west1"))
    assert found.zone == "BE"
    assert found.g_per_kwh == em2025("BE")
    published = next(
        r for r in _csv("cloud/codecarbon_gcp_impact.csv") if r["region"] == "europe-west1"
    )["impact"]
    assert found.note is not None
    assert f"Google publishes {float(published):g} gCO2e/kWh" in found.note


def test_override_wins_and_is_labelled_user() -> None:
    found = intensity_for(parse_region("FR"), override_g_per_kwh=123.0)
    assert found.g_per_kwh == 123.0
    assert found.source == "user"
    assert found.file is None
    assert found.year is None


@pytest.mark.parametrize("bad", [-1.0, float("nan"), "100"])
def test_bad_override_is_rejected(bad: Any) -> None:
    with pytest.raises(InvalidParameterError, match=r"The 'override_g_per_kwh' parameter must"):
        intensity_for(parse_region("FR"), override_g_per_kwh=bad)


def test_bad_scope_is_rejected() -> None:
    with pytest.raises(InvalidParameterError, match=r"The 'scope' parameter must be .* Got 'x'"):
        intensity_for(parse_region("FR"), scope="x")  # type: ignore[arg-type]


def test_to_dict_is_json_ready() -> None:
    found = intensity_for(parse_region("CA-QC"))
    data = json.loads(json.dumps(found.to_dict()))
    assert data["scope"] == "lifecycle"
    assert data["zone"] == "CA-QC"
    assert isinstance(found, Intensity)


def test_datasets_lists_every_grid_file_with_vintage_and_licence() -> None:
    listed = {d["file"]: d for d in datasets()}
    assert set(listed) == {
        EM25,
        EM24,
        GA,
        EMBER,
        OWID,
        "grid/unfccc_ifi_marginal_intensities_2021.json",
    }
    assert listed[EM24]["rows"] == len(_csv(EM24))
    assert listed[EM25]["rows"] == len(_json(EM25))
    assert listed[GA]["rows"] == len(_csv(GA, skip=1))
    assert listed[EM25]["scope"] == "lifecycle"
    assert listed[EM24]["scope"] == "direct, lifecycle"
    assert listed[EM24]["licence"] == "ODbL-1.0"
    for entry in listed.values():
        assert DATA.joinpath(entry["file"]).is_file()
        assert entry["attribution"]
        assert entry["years"] == sorted(entry["years"])

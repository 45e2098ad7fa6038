from __future__ import annotations

import csv
import io
from importlib import resources

import pytest

from wattwise.carbon import known_region_ids, parse_region
from wattwise.exceptions import RegionError

DATA = resources.files("wattwise.data")


def _csv(relpath: str, skip: int = 0) -> list[dict[str, str]]:
    text = DATA.joinpath(relpath).read_text(encoding="utf-8-sig")
    lines = io.StringIO(text)
    for _ in range(skip):
        lines.readline()
    return list(csv.DictReader(lines))


@pytest.mark.parametrize(
    ("text", "zone", "country"),
    [
        pytest.param("FR", "FR", "FR", id="iso2"),
        pytest.param("fr", "FR", "FR", id="iso2-lower"),
        pytest.param(" Fr ", "FR", "FR", id="iso2-spaces"),
        pytest.param("FRA", "FR", "FR", id="iso3"),
        pytest.param("deu", "DE", "DE", id="iso3-lower"),
        pytest.param("US-CAL-CISO", "US-CAL-CISO", "US", id="em-ba"),
        pytest.param("us-cal-ciso", "US-CAL-CISO", "US", id="em-ba-lower"),
        pytest.param("CA-QC", "CA-QC", "CA", id="em-province"),
        pytest.param("AU-NSW", "AU-NSW", "AU", id="em-state"),
        pytest.param("DK-DK1", "DK-DK1", "DK", id="em-bidding-zone"),
        pytest.param("US-VA", "US-VA", "US", id="ga-state"),
    ],
)
def test_parse_region_accepts_codes_and_zones(text: str, zone: str, country: str) -> None:
    location = parse_region(text)
    assert location.zone == zone
    assert location.country_iso2 == country
    assert location.how == "explicit"
    assert location.cloud_provider is None
    assert location.warning is None


def test_parse_region_records_subdivisions_only_for_states_and_provinces() -> None:
    assert parse_region("CA-QC").subdivision == "QC"
    assert parse_region("us-va").subdivision == "VA"
    assert parse_region("AU-NSW").subdivision == "NSW"
    assert parse_region("US-CAL-CISO").subdivision is None  # a balancing authority
    assert parse_region("DK-DK1").subdivision is None
    assert parse_region("FR").subdivision is None


def test_display_names_suit_the_hugging_face_card() -> None:
    assert parse_region("CA-QC").display_name == "Québec, Canada"
    assert parse_region("FR").display_name == "France"
    assert parse_region("gcp:europe-west1").display_name.endswith("Belgium")


def test_world_is_a_region() -> None:
    location = parse_region("world")
    assert location.zone == "WORLD"
    assert location.country_iso2 is None
    assert location.display_name == "World"


@pytest.mark.parametrize(
    ("text", "provider", "region", "zone", "country"),
    [
        pytest.param("gcp:europe-west1", "gcp", "europe-west1", "BE", "BE", id="gcp"),
        pytest.param("GCP:Europe-West1", "gcp", "europe-west1", "BE", "BE", id="gcp-case"),
        pytest.param("aws:us-east-1", "aws", "us-east-1", "US-VA", "US", id="aws"),
        pytest.param("azure:westeurope", "azure", "westeurope", "NL", "NL", id="azure"),
        pytest.param("azure:West Europe", "azure", "westeurope", "NL", "NL", id="azure-display"),
        pytest.param(
            "gcp:northamerica-northeast1",
            "gcp",
            "northamerica-northeast1",
            "CA-QC",
            "CA",
            id="gcp-quebec",
        ),
    ],
)
def test_cloud_regions_map_to_grid_zones(
    text: str, provider: str, region: str, zone: str, country: str
) -> None:
    location = parse_region(text)
    assert (location.cloud_provider, location.cloud_region) == (provider, region)
    assert location.zone == zone
    assert location.country_iso2 == country
    assert location.is_cloud


def test_aws_us_east_1_is_virginia() -> None:
    location = parse_region("aws:us-east-1")
    assert location.subdivision == "VA"
    assert "Virginia" in location.display_name


def test_unknown_region_message_is_one_line_with_close_matches() -> None:
    with pytest.raises(RegionError) as info:
        parse_region("FRX")
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("Unknown region 'FRX'. Close matches: FR")
    assert "Use an ISO country code (FR), a grid zone (US-CAL-CISO)" in message
    assert "gcp:europe-west1" in message
    assert message.endswith("'wattwise doctor' lists the data.")


def test_unknown_region_suggests_zone_ids_for_place_names() -> None:
    with pytest.raises(RegionError, match=r"CA-QC \(Québec\)"):
        parse_region("Quebec")
    with pytest.raises(RegionError, match=r"GE \(Georgia\), US-GA \(Georgia\)"):
        parse_region("Georgia")  # ambiguous names are suggested, never guessed


@pytest.mark.parametrize(
    ("text", "suggestion"),
    [
        pytest.param("gcp:europe-wst1", "gcp:europe-west1", id="region-typo"),
        pytest.param("gpc:europe-west1", "gcp:europe-west1", id="provider-typo"),
        pytest.param("azure:westeurop", "azure:westeurope", id="azure-typo"),
    ],
)
def test_unknown_cloud_region_suggests_the_provider_regions(text: str, suggestion: str) -> None:
    with pytest.raises(RegionError) as info:
        parse_region(text)
    assert suggestion in str(info.value)
    assert "\n" not in str(info.value)


def test_newline_in_region_keeps_the_message_on_one_line() -> None:
    with pytest.raises(RegionError) as info:
        parse_region("F\nR")
    assert "\n" not in str(info.value)


def test_known_region_ids_are_sorted_and_all_parse() -> None:
    ids = known_region_ids()
    assert ids == sorted(ids)
    assert len(ids) == len(set(ids))
    for expected in ("FR", "US-CAL-CISO", "CA-QC", "WORLD", "gcp:europe-west1", "aws:us-east-1"):
        assert expected in ids
    for region_id in ids:
        location = parse_region(region_id)
        if ":" not in region_id:
            assert location.zone == region_id


def test_region_zone_map_is_consistent_with_the_zone_tables() -> None:
    rows = _csv("cloud/region_zones.csv")
    assert list(rows[0]) == [
        "provider",
        "region",
        "zone",
        "country_iso2",
        "display_name",
        "source",
    ]
    keys = [(r["provider"], r["region"]) for r in rows]
    assert len(keys) == len(set(keys))
    for row in rows:
        assert row["provider"] in {"gcp", "aws", "azure"}
        assert row["source"]
        zone = parse_region(row["zone"])
        assert zone.zone == row["zone"]
        assert zone.country_iso2 == row["country_iso2"]


def test_region_zone_map_covers_every_green_algorithms_datacentre() -> None:
    known = {(r["provider"], r["region"]) for r in _csv("cloud/region_zones.csv")}
    for row in _csv("cloud/greenalgorithms_cloudProviders_datacenters.csv", skip=1):
        if row["provider"] == "gcp":
            assert ("gcp", row["Name"]) in known
    for row in _csv("cloud/codecarbon_gcp_impact.csv"):
        region = row["region"].replace("me-cenrtal1", "me-central1")  # upstream typo
        assert ("gcp", region) in known
    for row in _csv("cloud/mlco2_impact.csv"):
        if row["provider"] in {"aws", "azure"}:
            assert (row["provider"], row["region"]) in known

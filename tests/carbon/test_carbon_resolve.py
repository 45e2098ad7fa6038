from __future__ import annotations

import json
from pathlib import Path

import pytest

from wattwise.carbon import resolve_location
from wattwise.carbon._timezone import country_for_tz, local_tz_name, normalise_tz_name
from wattwise.exceptions import ConfigError, RegionError

ZONE_TAB = "# tz zone descriptions\nFR\t+4852+00220\tEurope/Paris\nIN\t+2232+08822\tAsia/Kolkata\n"
ZONE1970_TAB = (
    "# zone1970\nCH,DE,LI\t+4723+00832\tEurope/Zurich\nFR,MC\t+4852+00220\tEurope/Paris\n"
)


@pytest.fixture
def tzdata(tmp_path: Path) -> Path:
    """A fake tz database: two tables and a backward link (Asia/Calcutta -> Asia/Kolkata)."""
    root = tmp_path / "zoneinfo"
    (root / "Asia").mkdir(parents=True)
    (root / "zone.tab").write_text(ZONE_TAB, encoding="utf-8")
    (root / "zone1970.tab").write_text(ZONE1970_TAB, encoding="utf-8")
    (root / "Asia" / "Kolkata").write_bytes(b"TZif")
    (root / "Asia" / "Calcutta").symlink_to("Kolkata")
    return root


ALL_SOURCES = {"WATTWISE_REGION": "FR", "WATTWISE_CLOUD": "gcp:europe-west1"}
CLOUD_ONLY = {"WATTWISE_CLOUD": "gcp:europe-west1"}


@pytest.mark.parametrize(
    ("region", "config", "environ", "zone", "how"),
    [
        pytest.param("DE", "ES", ALL_SOURCES, "DE", "explicit", id="explicit-beats-env"),
        pytest.param(None, "ES", ALL_SOURCES, "FR", "env", id="env-beats-config"),
        pytest.param(" ", "ES", CLOUD_ONLY, "ES", "config", id="config-beats-cloud"),
        pytest.param(None, None, CLOUD_ONLY, "BE", "cloud", id="cloud-beats-timezone"),
        pytest.param(None, None, {}, "FR", "timezone", id="timezone-beats-world"),
        pytest.param(None, None, {"WATTWISE_REGION": ""}, "FR", "timezone", id="empty-env"),
    ],
)
def test_resolution_order(
    tzdata: Path,
    region: str | None,
    config: str | None,
    environ: dict[str, str],
    zone: str,
    how: str,
) -> None:
    location = resolve_location(
        region,
        config_region=config,
        environ=environ,
        tz_name="Europe/Paris",
        tzdata_dirs=[tzdata],
    )
    assert (location.zone, location.how) == (zone, how)
    if how in {"explicit", "env", "config", "cloud"}:
        assert location.warning is None


def test_cloud_hint_records_provider_and_region(tzdata: Path) -> None:
    location = resolve_location(
        environ={"WATTWISE_CLOUD": "azure:westeurope"}, tzdata_dirs=[tzdata]
    )
    assert (location.cloud_provider, location.cloud_region, location.zone) == (
        "azure",
        "westeurope",
        "NL",
    )


def test_cloud_hint_without_region_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"WATTWISE_CLOUD='gcp' names no region"):
        resolve_location(environ={"WATTWISE_CLOUD": "gcp"}, tz_name="")


def test_unknown_env_region_names_the_variable() -> None:
    with pytest.raises(RegionError, match=r"Unknown region 'FRX' \(from WATTWISE_REGION\)"):
        resolve_location(environ={"WATTWISE_REGION": "FRX"})


def test_timezone_guess_warns_and_says_how_to_be_exact(tzdata: Path) -> None:
    location = resolve_location(environ={}, tz_name="Europe/Paris", tzdata_dirs=[tzdata])
    assert location.zone == "FR"
    assert location.how == "timezone"
    assert location.warning == (
        "Location guessed from the time zone 'Europe/Paris' as FR; "
        "pass --region or set WATTWISE_REGION to be exact."
    )


def test_timezone_guess_uses_zone1970_when_zone_tab_lacks_the_zone(tzdata: Path) -> None:
    assert country_for_tz("Europe/Zurich", tzdata_dirs=[tzdata]) == "CH"


def test_timezone_guess_follows_backward_links(tzdata: Path) -> None:
    assert country_for_tz("Asia/Calcutta", tzdata_dirs=[tzdata]) == "IN"


def test_timezone_from_tz_environment_variable(tzdata: Path) -> None:
    location = resolve_location(environ={"TZ": ":Europe/Paris"}, tzdata_dirs=[tzdata])
    assert (location.zone, location.how) == ("FR", "timezone")


@pytest.mark.parametrize("tz", ["UTC", "Etc/UTC", "Etc/GMT+2", "GMT", "CET-1CEST"])
def test_zones_without_a_country_fall_back_to_the_world_with_a_warning(
    tzdata: Path, tz: str
) -> None:
    location = resolve_location(environ={}, tz_name=tz, tzdata_dirs=[tzdata])
    assert location.zone == "WORLD"
    assert location.how == "world"
    assert location.country_iso2 is None
    assert location.warning is not None
    assert "world-average" in location.warning
    assert "WATTWISE_REGION" in location.warning
    assert "--region" in location.warning


def test_unknown_timezone_falls_back_to_the_world(tzdata: Path) -> None:
    location = resolve_location(environ={}, tz_name="Mars/Olympus_Mons", tzdata_dirs=[tzdata])
    assert location.how == "world"


def test_no_timezone_at_all_falls_back_to_the_world() -> None:
    location = resolve_location(environ={}, tz_name="")
    assert location.how == "world"
    assert location.warning is not None
    assert location.warning.startswith("Location unknown: using the world-average")


def test_local_tz_name_reads_the_localtime_link(tmp_path: Path) -> None:
    link = tmp_path / "localtime"
    link.symlink_to("/usr/share/zoneinfo/Europe/Paris")
    assert local_tz_name({}, localtime=link, timezone_file=tmp_path / "none") == "Europe/Paris"
    assert local_tz_name({"TZ": "Asia/Tokyo"}, localtime=link) == "Asia/Tokyo"


def test_local_tz_name_falls_back_to_etc_timezone(tmp_path: Path) -> None:
    (tmp_path / "timezone").write_text("Europe/Berlin\n", encoding="utf-8")
    found = local_tz_name({}, localtime=tmp_path / "missing", timezone_file=tmp_path / "timezone")
    assert found == "Europe/Berlin"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (":Europe/Paris", "Europe/Paris"),
        ("/usr/share/zoneinfo/America/New_York", "America/New_York"),
        ("/usr/share/zoneinfo/posix/Europe/Paris", "Europe/Paris"),
        ("EST5EDT", None),
        ("", None),
    ],
)
def test_normalise_tz_name(value: str, expected: str | None) -> None:
    assert normalise_tz_name(value) == expected


def test_location_to_dict_is_json_ready() -> None:
    location = resolve_location("gcp:europe-west1", environ={})
    data = json.loads(json.dumps(location.to_dict()))
    assert data["zone"] == "BE"
    assert data["cloud_provider"] == "gcp"
    assert data["how"] == "explicit"
    assert set(data) == {
        "zone",
        "country_iso2",
        "subdivision",
        "cloud_provider",
        "cloud_region",
        "display_name",
        "how",
        "warning",
    }

"""Region ids: ISO countries, grid zones and cloud regions; parsing and suggestions."""

from __future__ import annotations

import functools
import re
from typing import NamedTuple

from wattwise.carbon import _tables
from wattwise.carbon._location import WORLD_ZONE, Location, LocationHow, world_location
from wattwise.exceptions import RegionError

CLOUD_PROVIDERS = ("aws", "azure", "gcp")
_PROVIDER_ALIASES = {
    "amazon": "aws",
    "aws": "aws",
    "azure": "azure",
    "microsoft": "azure",
    "gcp": "gcp",
    "google": "gcp",
}
_WORLD_IDS = frozenset({"WORLD", "GLOBAL"})
# Countries whose hyphenated zone ids name a state or province (ISO 3166-2 style).
_SUBDIVISION_COUNTRIES = frozenset({"AU", "CA", "US"})
# Green Algorithms writes Manitoba as CA-MT; its ISO 3166-2 code (and Electricity Maps') is MB.
_SUBDIVISION_ERRATA = {"CA-MT": "MB"}
_HOW_TO_FIX = (
    "Use an ISO country code (FR), a grid zone (US-CAL-CISO) or a cloud region "
    "(gcp:europe-west1); 'wattwise doctor' lists the data."
)


class _Zone(NamedTuple):
    id: str
    name: str
    country_iso2: str | None
    subdivision: str | None
    display_name: str


class _Index(NamedTuple):
    zones: dict[str, _Zone]
    iso3: dict[str, str]
    names: dict[str, tuple[str, ...]]
    cloud: dict[tuple[str, str], _tables.CloudRegion]


def _subdivision(zone: str) -> str | None:
    if zone in _SUBDIVISION_ERRATA:
        return _SUBDIVISION_ERRATA[zone]
    parts = zone.split("-")
    if len(parts) < 2 or parts[0] not in _SUBDIVISION_COUNTRIES:
        return None
    code = parts[1].rstrip("0123456789")
    if parts[0] == "US" and len(code) != 2:
        return None  # US-CAL-CISO is a balancing authority, not a state
    return code or None


@functools.cache
def country_names() -> dict[str, str]:
    """ISO alpha-2 -> a readable country name (OWID, else Electricity Maps, Ember, UNFCCC)."""
    names: dict[str, str] = dict(_tables.unfccc_names())
    names.update({k: v.name for k, v in _tables.ember().items() if k != "WORLD"})
    names.update({z: r.name for z, r in _tables.em_2025().items() if len(z) == 2 and z.isalpha()})
    names.update({k: v.name for k, v in _tables.owid().items()})
    return names


@functools.cache
def _index() -> _Index:
    countries = country_names()
    em24 = _tables.em_2024()
    em25 = _tables.em_2025()
    ga = _tables.ga_ci()
    zones: dict[str, _Zone] = {}
    names: dict[str, list[str]] = {}

    def add(zone_id: str, name: str) -> None:
        country = zone_id.split("-")[0]
        country_name = countries.get(country, country)
        if "-" in zone_id:
            display = f"{name}, {country_name}"
        else:
            name = country_name if zone_id in countries else name
            display = name
        zones[zone_id] = _Zone(
            id=zone_id,
            name=name,
            country_iso2=country,
            subdivision=_subdivision(zone_id),
            display_name=display,
        )
        names.setdefault(_tables.fold(name), []).append(zone_id)

    for zone_id in sorted(set(em24) | set(em25)):
        if zone_id.upper() in _WORLD_IDS:
            continue
        row25 = em25.get(zone_id)
        add(zone_id, (row25.display_name or row25.name) if row25 else em24[zone_id].name)
    for location, row in ga.items():
        if location in zones or location.upper() in _WORLD_IDS:
            continue
        add(location, row.region_name if row.kind == "Region" else row.country_name)
    for iso2 in countries:
        if iso2 not in zones:
            add(iso2, countries[iso2])
    return _Index(
        zones=zones,
        iso3=_tables.iso3_to_iso2(),
        names={k: tuple(v) for k, v in names.items()},
        cloud=_tables.cloud_regions(),
    )


def known_region_ids() -> list[str]:
    """Every region id :func:`parse_region` accepts, sorted.

    Country codes (ISO 3166-1 alpha-2), grid zones (Electricity Maps zone ids and Green
    Algorithms location codes), ``WORLD``, and cloud regions as ``provider:region``.
    ISO alpha-3 codes are accepted too but not listed.
    """
    index = _index()
    ids = [*index.zones, WORLD_ZONE, *(f"{p}:{r}" for p, r in index.cloud)]
    return sorted(ids)


def zone_display_name(zone: str) -> str:
    """Readable name of a zone id (``"CA-QC"`` -> ``"Québec, Canada"``)."""
    if zone == WORLD_ZONE:
        return "World"
    found = _index().zones.get(zone)
    return found.display_name if found else zone


def _normalise_cloud_region(provider: str, region: str) -> str:
    region = region.strip().lower()
    if provider == "azure":
        region = re.sub(r"[\s_-]+", "", region)
    return region


def _cloud_location(text: str, *, how: LocationHow, origin: str | None) -> Location:
    provider_text, _, region_text = text.partition(":")
    provider = _PROVIDER_ALIASES.get(provider_text.strip().lower())
    if provider is None:
        raise RegionError(_unknown_message(text, origin))
    region = _normalise_cloud_region(provider, region_text)
    found = _index().cloud.get((provider, region))
    if found is None:
        raise RegionError(_unknown_message(text, origin))
    zone = _index().zones.get(found.zone)
    return Location(
        zone=found.zone,
        country_iso2=found.country_iso2 or None,
        subdivision=zone.subdivision if zone else None,
        cloud_provider=provider,
        cloud_region=found.region,
        display_name=found.display_name,
        how=how,
    )


def parse_region(text: str) -> Location:
    """The location a region string names.

    Accepted forms (case-insensitive): an ISO 3166-1 alpha-2 (``"FR"``) or alpha-3
    (``"FRA"``) country code; an Electricity Maps zone id (``"US-CAL-CISO"``, ``"CA-QC"``,
    ``"AU-NSW"``, ``"DK-DK1"``) or Green Algorithms location code (``"US-VA"``);
    ``"WORLD"``; or a cloud region as ``provider:region`` (``"gcp:europe-west1"``,
    ``"aws:us-east-1"``, ``"azure:westeurope"``). Place names are not accepted (they are
    ambiguous: Georgia) but are used to suggest ids.

    Args:
        text: The region string.

    Returns:
        The location, with ``how="explicit"``.

    Raises:
        RegionError: If the region is unknown; the one-line message lists close matches.
    """
    return parse_region_as(text, how="explicit", origin=None)


def parse_region_as(text: str, *, how: LocationHow, origin: str | None) -> Location:
    """:func:`parse_region` recording ``how``; ``origin`` names the setting in messages."""
    raw = text.strip()
    if ":" in raw:
        return _cloud_location(raw, how=how, origin=origin)
    key = raw.upper()
    if key in _WORLD_IDS:
        return world_location(how=how, warning=None)
    index = _index()
    zone = index.zones.get(key)
    if zone is None and len(key) == 3:
        iso2 = index.iso3.get(key)
        zone = index.zones.get(iso2) if iso2 else None
    if zone is None:
        raise RegionError(_unknown_message(text, origin))
    return Location(
        zone=zone.id,
        country_iso2=zone.country_iso2,
        subdivision=zone.subdivision,
        cloud_provider=None,
        cloud_region=None,
        display_name=zone.display_name,
        how=how,
    )


def close_matches(text: str, *, limit: int = 5) -> list[str]:
    """Known ids close to ``text``; place names that match give ``"ID (Name)"``."""
    import difflib  # only needed on errors

    index = _index()
    raw = text.strip()
    found: list[str] = []
    if ":" in raw:
        provider_text, _, region_text = raw.partition(":")
        provider = _PROVIDER_ALIASES.get(provider_text.strip().lower())
        providers = (
            [provider]
            if provider
            else difflib.get_close_matches(provider_text.strip().lower(), CLOUD_PROVIDERS, 3, 0.3)
        )
        for candidate in providers:
            regions = [r for p, r in index.cloud if p == candidate]
            wanted = _normalise_cloud_region(candidate, region_text)
            found += [
                f"{candidate}:{r}" for r in difflib.get_close_matches(wanted, regions, limit, 0.6)
            ]
    else:
        folded = _tables.fold(raw)
        for name in difflib.get_close_matches(folded, index.names, 3, 0.8):
            found += [f"{z} ({index.zones[z].name})" for z in index.names[name]]
        ids = [*index.zones, WORLD_ZONE]
        found += difflib.get_close_matches(raw.upper(), ids, limit, 0.6)
    unique = list(dict.fromkeys(found))
    return unique[:limit]


def _unknown_message(text: str, origin: str | None) -> str:
    where = f" (from {origin})" if origin else ""
    matches = close_matches(text)
    close = f" Close matches: {', '.join(matches)}." if matches else ""
    return f"Unknown region {text!r}{where}.{close} {_HOW_TO_FIX}"

"""The shipped grid and cloud tables, parsed lazily and cached per process.

Nothing here runs at import time: each table is read on its first use (``functools.cache``),
so ``import wattwise.carbon`` stays cheap. Paths are relative to ``wattwise/data`` and are
the ``file`` recorded with every figure; ``data/PROVENANCE.md`` documents each file.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from typing import NamedTuple

from wattwise.data import read_csv, read_json

EM_2024_FILE = "grid/electricitymaps_yearly_2024.csv"
EM_2025_FILE = "grid/electricitymaps_yearly_2025_lifecycle.json"
GA_CI_FILE = "grid/greenalgorithms_CI_aggregated.csv"
EMBER_FILE = "grid/ember_average_intensities.json"
OWID_FILE = "grid/owid_global_energy_mix.json"
UNFCCC_FILE = "grid/unfccc_ifi_marginal_intensities_2021.json"
REGION_ZONES_FILE = "cloud/region_zones.csv"
CODECARBON_GCP_FILE = "cloud/codecarbon_gcp_impact.csv"
PUE_FILE = "pue/pue_reference_values.csv"

# ISO 3166-1 alpha-3 -> alpha-2 for territories that the UNFCCC table (our source of the
# mapping) lacks but Ember, OWID or Electricity Maps cover. Codes are ISO 3166-1 facts.
_ISO3_SUPPLEMENT = {
    "ALA": "AX",
    "CYM": "KY",
    "ESH": "EH",
    "HKG": "HK",
    "MAC": "MO",
    "SGS": "GS",
}


def fold(text: str) -> str:
    """Case- and accent-insensitive form of a name (``"Québec"`` -> ``"quebec"``)."""
    decomposed = unicodedata.normalize("NFKD", text)
    stripped = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join(stripped.split()).casefold()


class EmRow(NamedTuple):
    """One zone of the Electricity Maps 2024 yearly table (gCO2e/kWh)."""

    zone: str
    country: str
    name: str
    direct: float | None
    lifecycle: float | None
    year: int
    citation: str


class Em2025Row(NamedTuple):
    """One zone of the Electricity Maps 2025 yearly (life-cycle) table."""

    zone: str
    name: str
    display_name: str | None
    country_name: str | None
    lifecycle: float


class GaRow(NamedTuple):
    """One row of Green Algorithms ``CI_aggregated.csv``."""

    location: str
    country_name: str
    region_name: str
    kind: str
    g_per_kwh: float
    year: int | None
    scope: str
    source: str
    comments: str


class CountryFigure(NamedTuple):
    """A country (or world) average from Ember or OWID."""

    key: str
    name: str
    g_per_kwh: float
    year: int


class CloudRegion(NamedTuple):
    """One row of ``cloud/region_zones.csv``."""

    provider: str
    region: str
    zone: str
    country_iso2: str
    display_name: str
    source: str


def _float(text: str) -> float | None:
    text = text.strip()
    return float(text) if text else None


@functools.cache
def em_2024() -> dict[str, EmRow]:
    """Electricity Maps 2024 yearly table, by zone id (includes the ``GLOBAL`` row)."""
    out: dict[str, EmRow] = {}
    for row in read_csv(EM_2024_FILE):
        direct_key = next(k for k in row if k.endswith("(direct)"))
        lifecycle_key = next(k for k in row if k.endswith("(Life cycle)"))
        zone = row["Zone id"].strip()
        out[zone] = EmRow(
            zone=zone,
            country=row["Country"].strip(),
            name=row["Zone name"].strip(),
            direct=_float(row[direct_key]),
            lifecycle=_float(row[lifecycle_key]),
            year=int(row["Datetime (UTC)"][:4]),
            citation=row["Citation"].strip(),
        )
    return out


@functools.cache
def em_2025() -> dict[str, Em2025Row]:
    """Electricity Maps 2025 yearly life-cycle table (via co2.js), by zone id."""
    data = read_json(EM_2025_FILE)
    out: dict[str, Em2025Row] = {}
    for zone, entry in data.items():
        value = entry.get("carbonIntensity", {}).get("value")
        if value is None:
            continue
        meta = entry.get("zone", {})
        out[zone] = Em2025Row(
            zone=zone,
            name=str(meta.get("zoneName", zone)),
            display_name=meta.get("displayName"),
            country_name=meta.get("countryName"),
            lifecycle=float(value),
        )
    return out


_YEAR_PATTERNS = (
    re.compile(r"data from (?:[a-z]+ )?(\d{4})", re.IGNORECASE),
    re.compile(r"based on (\d{4})", re.IGNORECASE),
    re.compile(r"using (\d{4})", re.IGNORECASE),
)


def _ga_year(*texts: str) -> int | None:
    for pattern in _YEAR_PATTERNS:
        for text in texts:
            match = pattern.search(text)
            if match:
                return int(match.group(1))
    return None


@functools.cache
def ga_ci() -> dict[str, GaRow]:
    """Green Algorithms ``CI_aggregated.csv`` by location code (``FR``, ``US-VA``, ``WORLD``).

    Scope per row: the two rows taken from electricityMap are life-cycle; every other row
    (carbonfootprint.com with national inventories, eGRID, AIB production mix, IEA) is a
    generation (combustion) factor, some with T&D losses: ``direct``. Evidence: Iceland
    0.13, Norway 7.62, Sweden 5.67 g/kWh, against life-cycle figures of 22-33 g/kWh.
    """
    out: dict[str, GaRow] = {}
    for row in read_csv(GA_CI_FILE, skip_rows=1):
        location = row["location"].strip()
        value = _float(row["carbonIntensity"])
        if not location or value is None or location in out:
            continue
        source = row["source"].strip()
        comments = row["comments"].strip()
        out[location] = GaRow(
            location=location,
            country_name=row["countryName"].strip(),
            region_name=row["regionName"].strip(),
            kind=row["Type"].strip(),
            g_per_kwh=value,
            year=_ga_year(source, comments),
            scope="lifecycle" if "electricitymap" in source.lower() else "direct",
            source=source,
            comments=comments,
        )
    return out


@functools.cache
def iso3_to_iso2() -> dict[str, str]:
    """ISO 3166-1 alpha-3 -> alpha-2, from the UNFCCC table's code columns."""
    out = dict(_ISO3_SUPPLEMENT)
    for entry in read_json(UNFCCC_FILE).values():
        iso2 = str(entry.get("country_code_iso_2", "")).strip().upper()
        iso3 = str(entry.get("country_code_iso_3", "")).strip().upper()
        if len(iso2) == 2 and len(iso3) == 3:
            out[iso3] = iso2
    return out


@functools.cache
def unfccc_names() -> dict[str, str]:
    """ISO alpha-2 -> country name as the UNFCCC table keys it."""
    out: dict[str, str] = {}
    for name, entry in read_json(UNFCCC_FILE).items():
        iso2 = str(entry.get("country_code_iso_2", "")).strip().upper()
        if len(iso2) == 2:
            out[iso2] = name.strip()
    return out


@functools.cache
def ember() -> dict[str, CountryFigure]:
    """Ember averages by ISO alpha-2, plus the ``"WORLD"`` aggregate."""
    iso = iso3_to_iso2()
    out: dict[str, CountryFigure] = {}
    for key, entry in read_json(EMBER_FILE).items():
        code = str(entry.get("country_code", "")).strip().upper()
        if code:
            iso2 = iso.get(code)
            if iso2 is None:
                continue
        elif key == "World":
            iso2 = "WORLD"
        else:
            continue
        out[iso2] = CountryFigure(
            key=key,
            name=str(entry["country_or_region"]),
            g_per_kwh=float(entry["emissions_intensity_gco2_per_kwh"]),
            year=int(entry["year"]),
        )
    return out


@functools.cache
def owid() -> dict[str, CountryFigure]:
    """OWID (via CodeCarbon) country averages by ISO alpha-2."""
    iso = iso3_to_iso2()
    out: dict[str, CountryFigure] = {}
    for key, entry in read_json(OWID_FILE).items():
        iso2 = iso.get(key.upper())
        value = entry.get("carbon_intensity")
        if iso2 is None or value is None:
            continue
        out[iso2] = CountryFigure(
            key=key,
            name=str(entry["country_name"]),
            g_per_kwh=float(value),
            year=int(entry["year"]),
        )
    return out


@functools.cache
def cloud_regions() -> dict[tuple[str, str], CloudRegion]:
    """``cloud/region_zones.csv`` by ``(provider, region)``."""
    out: dict[tuple[str, str], CloudRegion] = {}
    for row in read_csv(REGION_ZONES_FILE):
        region = CloudRegion(
            provider=row["provider"].strip(),
            region=row["region"].strip(),
            zone=row["zone"].strip(),
            country_iso2=row["country_iso2"].strip(),
            display_name=row["display_name"].strip(),
            source=row["source"].strip(),
        )
        out[(region.provider, region.region)] = region
    return out


@functools.cache
def codecarbon_gcp() -> dict[str, float]:
    """Google's published grid intensity per GCP region (CodeCarbon ``impact.csv``), g/kWh."""
    out: dict[str, float] = {}
    for row in read_csv(CODECARBON_GCP_FILE):
        region = row["region"].strip().replace("me-cenrtal1", "me-central1")
        value = _float(row["impact"])
        if value is not None:
            out[region] = value
    return out

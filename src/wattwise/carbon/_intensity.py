"""Grid carbon intensity (SCI ``I``) from the shipped yearly datasets, and ``O = E × PUE × I``."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any, Literal

from wattwise.carbon import _tables
from wattwise.carbon._location import WORLD_ZONE, Location
from wattwise.carbon._pue import Pue
from wattwise.data import read_csv, read_json
from wattwise.exceptions import InvalidParameterError

Scope = Literal["lifecycle", "direct"]
_SCOPES = ("direct", "lifecycle")
JOULES_PER_KWH = 3.6e6

EM_2025_DATASET = "Electricity Maps yearly 2025 (via co2.js)"
EM_2024_DATASET = "Electricity Maps yearly 2024 (via Green-Algorithms-data)"
GA_DATASET = "Green Algorithms CI_aggregated (2022)"
EMBER_DATASET = "Ember country averages (via co2.js)"
OWID_DATASET = "Our World in Data energy mix (via CodeCarbon)"
UNFCCC_DATASET = "UNFCCC IFI harmonized marginal grid factors 2021 (via co2.js)"

ODBL = "ODbL-1.0"
CC_BY = "CC-BY-4.0"
CC_BY_SA = "CC-BY-SA-4.0"
OWID_LICENCE = "MIT (CodeCarbon file); data CC-BY-4.0 (Our World in Data)"

EM_ATTRIBUTION = (
    "Electricity Maps (2025). 2024 Yearly Carbon Intensity Data (Version January 27, 2025). "
    "Electricity Maps. https://www.electricitymaps.com (ODbL 1.0; 2025 yearly figures "
    "republished by The Green Web Foundation co2.js)"
)
GA_ATTRIBUTION = (
    "Green Algorithms (Lannelongue, Grealey, Inouye 2021), green-algorithms-tool, CC BY 4.0"
)
EMBER_ATTRIBUTION = "Ember, via The Green Web Foundation co2.js, CC BY-SA 4.0"
OWID_ATTRIBUTION = (
    "Our World in Data / Ember / Energy Institute (CC BY 4.0), via CodeCarbon "
    "global_energy_mix.json (MIT, Copyright (c) 2019 Mila, BCG Gamma, CometML, Haverford "
    "College; (c) 2023 Code Carbon NGO)"
)
UNFCCC_ATTRIBUTION = (
    "UNFCCC Harmonized IFI Default Grid Factors 2021 v3.1, via The Green Web Foundation "
    "co2.js, CC BY-SA 4.0"
)


@dataclasses.dataclass(frozen=True)
class Intensity:
    """A grid carbon intensity and everything needed to cite and compare it (SCI ``I``).

    Attributes:
        g_per_kwh: Intensity in gCO2e per kWh.
        intensity_type: ``"average"`` (yearly average of the grid mix; never market-based).
        scope: ``"lifecycle"`` (includes upstream and construction emissions) or ``"direct"``
            (combustion at the power plant only). Figures of different scopes must not be
            compared (SCI baseline rule); this field says which one this is.
        year: Year the figure describes, or ``None`` for a user override.
        dataset: Dataset name and vintage, e.g. ``"Electricity Maps yearly 2025 (via co2.js)"``.
        file: Shipped file under ``wattwise/data`` the figure was read from, or ``None``.
        zone: Zone id the figure is for (``"FR"``, ``"US"``, ``"WORLD"``); it differs from the
            location's zone when a country or world average had to be used.
        temporal_granularity: ``"annual"`` for every shipped dataset.
        source: One-line human citation of the figure.
        licence: SPDX-style licence id of the data.
        note: Why this figure and not a closer one (fallbacks, scopes not mixed, provider
            figures not used), or ``None``.
    """

    g_per_kwh: float
    intensity_type: str
    scope: str
    year: int | None
    dataset: str
    file: str | None
    zone: str
    temporal_granularity: str
    source: str
    licence: str
    note: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The intensity as a JSON-ready dict (run record section D)."""
        return dataclasses.asdict(self)


def _figure(
    value: float,
    *,
    scope: str,
    year: int | None,
    dataset: str,
    file: str,
    zone: str,
    source: str,
    licence: str,
) -> Intensity:
    return Intensity(
        g_per_kwh=value,
        intensity_type="average",
        scope=scope,
        year=year,
        dataset=dataset,
        file=file,
        zone=zone,
        temporal_granularity="annual",
        source=source,
        licence=licence,
    )


_Step = Callable[[str, str, list[str]], "Intensity | None"]


def _em_2025(zone: str, scope: str, skipped: list[str]) -> Intensity | None:
    row = _tables.em_2025().get(zone)
    if row is None:
        return None
    if scope != "lifecycle":
        skipped.append(f"Electricity Maps 2025 has only a life-cycle figure ({row.lifecycle:g})")
        return None
    return _figure(
        row.lifecycle,
        scope="lifecycle",
        year=2025,
        dataset=EM_2025_DATASET,
        file=_tables.EM_2025_FILE,
        zone=zone,
        source=(
            f"Electricity Maps, 2025 yearly carbon intensity (life cycle) for {zone}, "
            "republished by The Green Web Foundation co2.js (ODbL 1.0). "
            "https://www.electricitymaps.com"
        ),
        licence=ODBL,
    )


def _em_2024(zone: str, scope: str, skipped: list[str]) -> Intensity | None:
    row = _tables.em_2024().get(zone)
    if row is None:
        return None
    value = row.lifecycle if scope == "lifecycle" else row.direct
    if value is None:
        return None
    citation = row.citation or "Electricity Maps"
    return _figure(
        value,
        scope=scope,
        year=row.year,
        dataset=EM_2024_DATASET,
        file=_tables.EM_2024_FILE,
        zone=zone,
        source=f"{citation} ({scope.replace('lifecycle', 'life cycle')}; ODbL 1.0)",
        licence=ODBL,
    )


def _ga(zone: str, scope: str, skipped: list[str]) -> Intensity | None:
    row = _tables.ga_ci().get(zone)
    if row is None:
        return None
    year = f", {row.year}" if row.year else ""
    if row.scope != scope:
        skipped.append(f"Green Algorithms has only a {row.scope} figure ({row.g_per_kwh:g}{year})")
        return None
    detail = f"; {row.comments}" if row.comments else ""
    return _figure(
        row.g_per_kwh,
        scope=scope,
        year=row.year,
        dataset=GA_DATASET,
        file=_tables.GA_CI_FILE,
        zone=zone,
        source=f"{row.source}{detail}; via {GA_ATTRIBUTION}",
        licence=CC_BY,
    )


def _ember(zone: str, scope: str, skipped: list[str]) -> Intensity | None:
    row = _tables.ember().get(zone)
    if row is None:
        return None
    if scope != "lifecycle":
        skipped.append(f"Ember has only a life-cycle figure ({row.g_per_kwh:g}, {row.year})")
        return None
    return _figure(
        row.g_per_kwh,
        scope="lifecycle",
        year=row.year,
        dataset=EMBER_DATASET,
        file=_tables.EMBER_FILE,
        zone=zone,
        source=f"Ember, {row.name} {row.year} average grid intensity; via {EMBER_ATTRIBUTION}",
        licence=CC_BY_SA,
    )


def _owid(zone: str, scope: str, skipped: list[str]) -> Intensity | None:
    row = _tables.owid().get(zone)
    if row is None:
        return None
    if scope != "lifecycle":
        skipped.append(f"OWID has only a life-cycle figure ({row.g_per_kwh:g}, {row.year})")
        return None
    return _figure(
        row.g_per_kwh,
        scope="lifecycle",
        year=row.year,
        dataset=OWID_DATASET,
        file=_tables.OWID_FILE,
        zone=zone,
        source=f"{row.name} {row.year} carbon intensity of electricity; {OWID_ATTRIBUTION}",
        licence=OWID_LICENCE,
    )


# Sub-national zones: Electricity Maps, then Green Algorithms (US states, CA provinces,
# AU states). Countries: Electricity Maps, then Ember, OWID, and Green Algorithms last.
_ZONE_STEPS: tuple[_Step, ...] = (_em_2025, _em_2024, _ga)
_COUNTRY_STEPS: tuple[_Step, ...] = (_em_2025, _em_2024, _ember, _owid, _ga)


def _world(scope: str, skipped: list[str]) -> Intensity:
    ember_world = _tables.ember().get("WORLD")
    if scope == "lifecycle" and ember_world is not None:
        return _figure(
            ember_world.g_per_kwh,
            scope="lifecycle",
            year=ember_world.year,
            dataset=EMBER_DATASET,
            file=_tables.EMBER_FILE,
            zone=WORLD_ZONE,
            source=f"Ember, World {ember_world.year} average grid intensity; via "
            f"{EMBER_ATTRIBUTION}",
            licence=CC_BY_SA,
        )
    if scope == "lifecycle":
        em_global = _tables.em_2024().get("GLOBAL")
        if em_global is not None and em_global.lifecycle is not None:
            return _figure(
                em_global.lifecycle,
                scope="lifecycle",
                year=em_global.year,
                dataset=EM_2024_DATASET,
                file=_tables.EM_2024_FILE,
                zone=WORLD_ZONE,
                source="Ember Global Electricity Review 2024 (2023 data), GLOBAL row of the "
                "Green-Algorithms-data Electricity Maps 2024 table",
                licence=ODBL,
            )
    # Direct: the IEA 2019 world figure (CO2 from generation), as CodeCarbon and Green
    # Algorithms use it. The EM GLOBAL row is not used for direct: it repeats Ember's
    # life-cycle figure in both columns.
    row = _tables.ga_ci()["WORLD"]
    found = _figure(
        row.g_per_kwh,
        scope="direct",
        year=row.year,
        dataset=GA_DATASET,
        file=_tables.GA_CI_FILE,
        zone=WORLD_ZONE,
        source=f"IEA Global Energy & CO2 Status Report 2019 ({row.source}); via {GA_ATTRIBUTION}",
        licence=CC_BY,
    )
    if scope != "direct":
        skipped.append("no life-cycle world figure is shipped; the direct IEA 2019 figure is used")
    return found


def _cloud_note(location: Location) -> str | None:
    if location.cloud_provider != "gcp" or location.cloud_region is None:
        return None
    published = _tables.codecarbon_gcp().get(location.cloud_region)
    if published is None:
        return None
    return (
        f"Google publishes {published:g} gCO2e/kWh for {location.cloud_region} "
        f"({_tables.CODECARBON_GCP_FILE}, 2024); not used, since its scope is not stated"
    )


def _validate_scope(scope: object) -> str:
    if scope not in _SCOPES:
        msg = (
            "The 'scope' parameter must be a str among {'direct', 'lifecycle'}. "
            f"Got {scope!r} instead."
        )
        raise InvalidParameterError(msg)
    return str(scope)


def _validate_non_negative(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        msg = f"The {name!r} parameter must be a float >= 0. Got {value!r} instead."
        raise InvalidParameterError(msg)
    if value < 0:
        msg = f"The {name!r} parameter must be a float >= 0. Got {value!r} instead."
        raise InvalidParameterError(msg)
    return float(value)


def intensity_for(
    location: Location,
    *,
    scope: Scope = "lifecycle",
    override_g_per_kwh: float | None = None,
) -> Intensity:
    """The yearly average grid intensity for a location, with its citation.

    Lookup order (``reference/standards-and-data.md`` §4.2), keeping to one scope:

    1. ``override_g_per_kwh`` (``source="user"``).
    2. Electricity Maps yearly for the zone: 2025 (life cycle), then 2024 (life-cycle or
       direct column).
    3. Green Algorithms for a US state, CA province or AU state (its figures are direct).
    4. The country average: Electricity Maps, then Ember, then OWID (life cycle); Green
       Algorithms (direct).
    5. The world average: Ember World (life cycle) or IEA 2019, 475 g (direct).

    A dataset that only has the other scope is skipped, never used silently: a direct
    request falls to the next dataset with direct figures, and ``note`` says which
    figures were passed over. Cloud regions were mapped to their zone by
    ``cloud/region_zones.csv``; provider-published figures are recorded in ``note`` only.

    Args:
        location: Where the electricity was used (:func:`resolve_location`).
        scope: ``"lifecycle"`` (default; what Electricity Maps publishes by default) or
            ``"direct"`` (combustion only).
        override_g_per_kwh: A figure the user supplies (gCO2e/kWh); it wins.

    Returns:
        The intensity.

    Raises:
        InvalidParameterError: If ``scope`` or ``override_g_per_kwh`` is invalid.
    """
    scope_name = _validate_scope(scope)
    if override_g_per_kwh is not None:
        value = _validate_non_negative("override_g_per_kwh", override_g_per_kwh)
        return Intensity(
            g_per_kwh=value,
            intensity_type="average",
            scope=scope_name,
            year=None,
            dataset="user override",
            file=None,
            zone=location.zone,
            temporal_granularity="annual",
            source="user",
            licence="user",
            note="Set by the user; its scope is as requested and was not checked.",
        )
    skipped: list[str] = []
    notes: list[str] = []
    found: Intensity | None = None
    levels: list[tuple[str, tuple[_Step, ...]]] = []
    if location.zone != WORLD_ZONE:
        country = location.country_iso2
        if country and country != location.zone:
            levels = [(location.zone, _ZONE_STEPS), (country, _COUNTRY_STEPS)]
        else:
            levels = [(location.zone, _COUNTRY_STEPS)]
    for code, steps in levels:
        level_skipped: list[str] = []
        for step in steps:
            found = step(code, scope_name, level_skipped)
            if found is not None:
                break
        if found is not None:
            break
        what = f"No {scope_name} figure for {code}"
        notes.append(f"{what} ({'; '.join(level_skipped)})" if level_skipped else what)
    if found is None:
        found = _world(scope_name, skipped)
        notes += skipped
    if found.zone != location.zone:
        level = "world" if found.zone == WORLD_ZONE else "country"
        notes.append(f"used the {level} average ({found.zone})")
    cloud = _cloud_note(location)
    if cloud:
        notes.append(cloud)
    if notes:
        found = dataclasses.replace(found, note="; ".join(notes) + ".")
    return found


def operational_co2e_g(energy_j: float, intensity: Intensity, pue: Pue) -> float:
    """Operational emissions SCI ``O`` in gCO2e: energy (kWh) × PUE × intensity (g/kWh).

    Args:
        energy_j: IT energy in joules (before PUE); 1 kWh = 3.6e6 J.
        intensity: The grid intensity (:func:`intensity_for`).
        pue: The facility overhead (:func:`pue_for`).

    Returns:
        Grams of CO2e.

    Raises:
        InvalidParameterError: If ``energy_j`` is negative or not finite.
    """
    energy = _validate_non_negative("energy_j", energy_j)
    return energy / JOULES_PER_KWH * pue.value * intensity.g_per_kwh


def _years(values: list[int | None]) -> list[int]:
    return sorted({v for v in values if v is not None})


def _entry(
    name: str,
    file: str,
    *,
    years: list[int],
    scopes: list[str],
    intensity_type: str,
    licence: str,
    rows: int,
    used: bool,
    attribution: str,
) -> dict[str, Any]:
    span = f"{years[0]}" if len(years) == 1 else f"{years[0]}-{years[-1]}"
    return {
        "name": name,
        "file": file,
        "year": span,
        "years": years,
        "scope": ", ".join(scopes),
        "intensity_type": intensity_type,
        "licence": licence,
        "rows": rows,
        "used_by_intensity_for": used,
        "attribution": attribution,
    }


def datasets() -> list[dict[str, Any]]:
    """The shipped intensity datasets, for ``wattwise doctor`` ("data vintage").

    Returns:
        One dict per dataset: ``name``, ``file`` (under ``wattwise/data``), ``year`` (a
        span such as ``"2022-2024"``: the vintage varies per row), ``years`` (list),
        ``scope`` (``"lifecycle"``, ``"direct"`` or ``"direct, lifecycle"``),
        ``intensity_type``, ``licence``, ``rows`` (entries in the file),
        ``used_by_intensity_for`` and ``attribution`` (the credit the licence requires).
    """
    em24 = _tables.em_2024()
    ga = _tables.ga_ci()
    return [
        _entry(
            EM_2025_DATASET,
            _tables.EM_2025_FILE,
            years=[2025],
            scopes=["lifecycle"],
            intensity_type="average",
            licence=ODBL,
            rows=len(read_json(_tables.EM_2025_FILE)),
            used=True,
            attribution=EM_ATTRIBUTION,
        ),
        _entry(
            EM_2024_DATASET,
            _tables.EM_2024_FILE,
            years=_years([r.year for r in em24.values()]),
            scopes=["direct", "lifecycle"],
            intensity_type="average",
            licence=ODBL,
            rows=len(read_csv(_tables.EM_2024_FILE)),
            used=True,
            attribution=EM_ATTRIBUTION,
        ),
        _entry(
            GA_DATASET,
            _tables.GA_CI_FILE,
            years=_years([r.year for r in ga.values()]),
            scopes=sorted({r.scope for r in ga.values()}),
            intensity_type="average",
            licence=CC_BY,
            rows=len(read_csv(_tables.GA_CI_FILE, skip_rows=1)),
            used=True,
            attribution=GA_ATTRIBUTION,
        ),
        _entry(
            EMBER_DATASET,
            _tables.EMBER_FILE,
            years=_years([r.year for r in _tables.ember().values()]),
            scopes=["lifecycle"],
            intensity_type="average",
            licence=CC_BY_SA,
            rows=len(read_json(_tables.EMBER_FILE)),
            used=True,
            attribution=EMBER_ATTRIBUTION,
        ),
        _entry(
            OWID_DATASET,
            _tables.OWID_FILE,
            years=_years([r.year for r in _tables.owid().values()]),
            scopes=["lifecycle"],
            intensity_type="average",
            licence=OWID_LICENCE,
            rows=len(read_json(_tables.OWID_FILE)),
            used=True,
            attribution=OWID_ATTRIBUTION,
        ),
        _entry(
            UNFCCC_DATASET,
            _tables.UNFCCC_FILE,
            years=[2021],
            scopes=["direct"],
            intensity_type="marginal",
            licence=CC_BY_SA,
            rows=len(read_json(_tables.UNFCCC_FILE)),
            used=False,
            attribution=UNFCCC_ATTRIBUTION,
        ),
    ]

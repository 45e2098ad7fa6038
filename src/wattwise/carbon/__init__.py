"""Carbon accounting: where a run happens, its grid intensity, PUE and operational CO2e.

``resolve_location()`` decides where (explicit region, ``WATTWISE_REGION``, config,
``WATTWISE_CLOUD``, a time-zone guess, or the world average: never a silent default);
``intensity_for()`` looks the grid intensity up in the shipped yearly datasets (Electricity
Maps, Green Algorithms, Ember, OWID) and says which scope, year and file it came from;
``pue_for()`` gives the facility overhead; ``operational_co2e_g()`` multiplies them out
(SCI ``O = E × I``, with ``E`` including PUE). Data is parsed on first use, not at import.
"""

from __future__ import annotations

from wattwise.carbon._intensity import (
    EM_ATTRIBUTION,
    EMBER_ATTRIBUTION,
    GA_ATTRIBUTION,
    OWID_ATTRIBUTION,
    UNFCCC_ATTRIBUTION,
    Intensity,
    datasets,
    intensity_for,
    operational_co2e_g,
)
from wattwise.carbon._location import Location
from wattwise.carbon._pue import Pue, pue_for
from wattwise.carbon._regions import country_names, known_region_ids, parse_region
from wattwise.carbon._resolve import resolve_location
from wattwise.carbon._tables import iso3_to_iso2

__all__ = [
    "EMBER_ATTRIBUTION",
    "EM_ATTRIBUTION",
    "GA_ATTRIBUTION",
    "Intensity",
    "Location",
    "OWID_ATTRIBUTION",
    "Pue",
    "UNFCCC_ATTRIBUTION",
    "country_names",
    "datasets",
    "intensity_for",
    "iso3_to_iso2",
    "known_region_ids",
    "operational_co2e_g",
    "parse_region",
    "pue_for",
    "resolve_location",
]

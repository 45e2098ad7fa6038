"""Credits the shipped data's licences require, per file, and which files a report used.

The texts follow ``wattwise/data/PROVENANCE.md`` (the attribution strings of the intensity
datasets are the ones ``wattwise.carbon`` records with every figure).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable
from typing import Any

from wattwise.carbon import (
    EM_ATTRIBUTION,
    EMBER_ATTRIBUTION,
    GA_ATTRIBUTION,
    OWID_ATTRIBUTION,
    UNFCCC_ATTRIBUTION,
)

LICENCE_URLS = {
    "ODbL-1.0": "https://opendatacommons.org/licenses/odbl/1-0/",
    "CC-BY-4.0": "https://creativecommons.org/licenses/by/4.0/",
    "CC-BY-SA-4.0": "https://creativecommons.org/licenses/by-sa/4.0/",
    "Apache-2.0": "https://www.apache.org/licenses/LICENSE-2.0",
    "MIT": "https://opensource.org/license/mit",
    "Apache-2.0 (wattwise)": "https://www.apache.org/licenses/LICENSE-2.0",
}

_CODECARBON = (
    "CodeCarbon, Copyright (c) 2019 Mila, BCG Gamma, CometML, Haverford College; "
    "Copyright (c) 2023 Code Carbon NGO (MIT)"
)
_MLCO2 = "ML CO2 Impact (mlco2/impact), Copyright (c) 2013-2019 Blackrock Digital LLC (MIT)"
_CCF = "Cloud Carbon Footprint, cloud-carbon-footprint/ccf-coefficients (Apache-2.0); unchanged"
_OURS = "wattwise, compiled from cited published facts (per-row sources in the file)"
_SPEC = (
    "wattwise, fitted on SPECpower_ssj2008 results published by SPEC (compiled by "
    "green-coding-solutions/spec-power-raw-data, MIT)"
)


@dataclasses.dataclass(frozen=True)
class DataCredit:
    """One shipped data file and the credit its licence asks for.

    Attributes:
        file: Path under ``wattwise/data``.
        name: Short dataset name.
        licence: Licence id (SPDX-style).
        licence_url: Where the licence text is (also shipped in ``wattwise/data/LICENSES``).
        attribution: The attribution text to reproduce.
        used: Whether the report's figures were computed with this file.
    """

    file: str
    name: str
    licence: str
    licence_url: str
    attribution: str
    used: bool = False

    def to_dict(self) -> dict[str, Any]:
        """JSON shape."""
        return dataclasses.asdict(self)


_CREDITS: tuple[tuple[str, str, str, str], ...] = (
    ("grid/electricitymaps_yearly_2025_lifecycle.json", "Electricity Maps yearly 2025",
     "ODbL-1.0", EM_ATTRIBUTION),
    ("grid/electricitymaps_yearly_2024.csv", "Electricity Maps yearly 2024", "ODbL-1.0",
     EM_ATTRIBUTION + "; aggregated by Nadja Volkmann in Green-Algorithms-data"),
    ("grid/greenalgorithms_CI_aggregated.csv", "Green Algorithms grid intensity",
     "CC-BY-4.0", GA_ATTRIBUTION),
    ("grid/ember_average_intensities.json", "Ember country averages", "CC-BY-SA-4.0",
     EMBER_ATTRIBUTION),
    ("grid/owid_global_energy_mix.json", "Our World in Data energy mix", "MIT",
     OWID_ATTRIBUTION),
    ("grid/unfccc_ifi_marginal_intensities_2021.json", "UNFCCC IFI marginal factors 2021",
     "CC-BY-SA-4.0", UNFCCC_ATTRIBUTION),
    ("cloud/region_zones.csv", "Cloud region to grid zone map", "Apache-2.0 (wattwise)",
     _OURS + "; built from Green Algorithms (CC BY 4.0), CodeCarbon and mlco2 (MIT) and "
     "CCF (Apache-2.0) facts"),
    ("cloud/ccf_coefficients_aws_use.csv", "CCF power coefficients (AWS)", "Apache-2.0", _CCF),
    ("cloud/ccf_coefficients_gcp_use.csv", "CCF power coefficients (GCP)", "Apache-2.0", _CCF),
    ("cloud/ccf_coefficients_azure_use.csv", "CCF power coefficients (Azure)", "Apache-2.0",
     _CCF),
    ("cloud/ccf_coefficients_aws_embodied.csv", "CCF embodied coefficients (AWS)",
     "Apache-2.0", _CCF),
    ("cloud/ccf_coefficients_gcp_embodied.csv", "CCF embodied coefficients (GCP)",
     "Apache-2.0", _CCF),
    ("cloud/ccf_coefficients_azure_embodied.csv", "CCF embodied coefficients (Azure)",
     "Apache-2.0", _CCF),
    ("cloud/codecarbon_gcp_impact.csv", "CodeCarbon GCP region intensities", "MIT",
     _CODECARBON),
    ("hardware/codecarbon_cpu_power.csv", "CodeCarbon CPU TDP table", "MIT", _CODECARBON),
    ("hardware/greenalgorithms_TDP_cpu.csv", "Green Algorithms CPU TDP", "CC-BY-4.0",
     GA_ATTRIBUTION),
    ("hardware/greenalgorithms_TDP_gpu.csv", "Green Algorithms GPU TDP", "CC-BY-4.0",
     GA_ATTRIBUTION),
    ("hardware/mlco2_gpus.csv", "ML CO2 Impact GPU table", "MIT", _MLCO2),
    ("reference/greenalgorithms_referenceValues.csv", "Green Algorithms reference values",
     "CC-BY-4.0", GA_ATTRIBUTION),
    ("reference/methodology_constants.csv", "Methodology constants", "Apache-2.0 (wattwise)",
     _OURS),
    ("pue/pue_reference_values.csv", "PUE reference values", "Apache-2.0 (wattwise)", _OURS),
    ("embodied/embodied_reference_values.csv", "Embodied carbon reference values",
     "Apache-2.0 (wattwise)", _OURS + " (BLOOM, CCF/Teads, SCI spec)"),
    ("meters_uncertainty.csv", "Meter uncertainty bands", "Apache-2.0 (wattwise)", _OURS),
    ("calibration/specpower_coefficients.csv", "CPU/DRAM model coefficients (SPECpower fit)",
     "Apache-2.0 (wattwise)", _SPEC),
    ("calibration/specpower_bands.csv", "CPU/DRAM model bands (SPECpower, out of sample)",
     "Apache-2.0 (wattwise)", _SPEC),
)  # fmt: skip


def _basename(path: str) -> str:
    return path.rsplit("/", 1)[-1]


def data_credits(records: Iterable[Any], *, extra_files: Iterable[str] = ()) -> list[DataCredit]:
    """Every shipped data file with its credit, marking those the records mention.

    A file counts as used when its name appears anywhere in a run record (intensity
    ``file``, meter sources, assumptions) or in ``extra_files`` (e.g. the embodied tables
    an SCI figure was computed with).

    Args:
        records: Run records (``RunRecord.record`` dicts) or any JSON-serialisable data.
        extra_files: Paths under ``wattwise/data`` used by the report itself.

    Returns:
        Used files first, then the rest, each in shipping order.
    """
    haystack = "\n".join(json.dumps(r, default=str, sort_keys=True) for r in records)
    extra = set(extra_files)
    credits = []
    for file, name, licence, attribution in _CREDITS:
        used = file in extra or _basename(file) in haystack or file in haystack
        credits.append(
            DataCredit(
                file=file,
                name=name,
                licence=licence,
                licence_url=LICENCE_URLS[licence],
                attribution=attribution,
                used=used,
            )
        )
    return sorted(credits, key=lambda c: not c.used)

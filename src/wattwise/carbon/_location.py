"""Where a run happens: the :class:`Location` record."""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

LocationHow = Literal["explicit", "env", "config", "cloud", "timezone", "world"]
"""How a location was determined, from the most to the least trustworthy."""

WORLD_ZONE = "WORLD"
"""The zone id of the world-average fallback."""


@dataclasses.dataclass(frozen=True)
class Location:
    """Where the electricity was used, as precisely as it is known.

    Attributes:
        zone: The id intensity is looked up with: an Electricity Maps zone id (``"FR"``,
            ``"US-CAL-CISO"``, ``"CA-QC"``), a Green Algorithms location code for places
            Electricity Maps does not split out (``"US-VA"``, ``"AU-ACT"``), or ``"WORLD"``.
        country_iso2: ISO 3166-1 alpha-2 code of the country, or ``None`` for the world.
        subdivision: State or province code (``"QC"`` for Quebec, ``"VA"`` for Virginia) where
            the zone is one, else ``None`` (grid zones such as ``US-CAL-CISO`` are not).
        cloud_provider: ``"gcp"``, ``"aws"`` or ``"azure"`` when the run is in a cloud region,
            else ``None``.
        cloud_region: The provider's region id (``"europe-west1"``), else ``None``.
        display_name: Free text for reports and the Hugging Face card
            (``co2_eq_emissions.geographical_location``), e.g. ``"Québec, Canada"``.
        how: How the location was determined: ``"explicit"`` (argument or ``--region``),
            ``"env"`` (``WATTWISE_REGION``), ``"config"``, ``"cloud"`` (``WATTWISE_CLOUD``),
            ``"timezone"`` (a guess) or ``"world"`` (unknown).
        warning: Why the location is uncertain (time-zone guess, world fallback), else
            ``None``. Callers show it, e.g. as a :class:`~wattwise.exceptions.LocationWarning`.
    """

    zone: str
    country_iso2: str | None
    subdivision: str | None
    cloud_provider: str | None
    cloud_region: str | None
    display_name: str
    how: LocationHow
    warning: str | None = None

    @property
    def is_cloud(self) -> bool:
        """Whether the location is a cloud provider's region."""
        return self.cloud_provider is not None

    def to_dict(self) -> dict[str, Any]:
        """The location as a JSON-ready dict (the run record's ``location`` object)."""
        return dataclasses.asdict(self)


def world_location(*, how: LocationHow, warning: str | None) -> Location:
    """The world-average location."""
    return Location(
        zone=WORLD_ZONE,
        country_iso2=None,
        subdivision=None,
        cloud_provider=None,
        cloud_region=None,
        display_name="World",
        how=how,
        warning=warning,
    )

"""Power usage effectiveness (PUE): facility overhead applied to IT energy."""

from __future__ import annotations

import dataclasses
import math
import re
from typing import Any

from wattwise.carbon import _tables
from wattwise.carbon._location import Location
from wattwise.data import read_csv
from wattwise.exceptions import InvalidParameterError

OWN_HARDWARE = "own hardware"


@dataclasses.dataclass(frozen=True)
class Pue:
    """A PUE value and where it comes from (run record field 18).

    Attributes:
        value: Total facility energy over IT energy, >= 1.0 (1.0 = no overhead counted).
        source: Which table row (or ``"user"``) the value comes from, as one line.
        applies_to: ``"own hardware"`` or the cloud provider id (``"gcp"``, ``"aws"``,
            ``"azure"``).
    """

    value: float
    source: str
    applies_to: str

    def to_dict(self) -> dict[str, Any]:
        """The PUE as a JSON-ready dict."""
        return dataclasses.asdict(self)


def _vintage(text: str) -> int:
    match = re.fullmatch(r"\s*(\d{4})\s*", text)
    return int(match.group(1)) if match else 0  # "pre-2024", "n/a" rank below any year


def _row_source(row: dict[str, str]) -> str:
    return (
        f"{row['used_by']} {row['pue']} ({row['vintage']}): {row['source_reference']}; "
        f"{_tables.PUE_FILE} row scope={row['scope']}, provider={row['provider']}"
    )


def validate_pue(value: object) -> float:
    """``value`` as a float if it is a valid PUE (a finite number >= 1.0).

    Raises:
        InvalidParameterError: Otherwise.
    """
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value < 1.0
    ):
        msg = f"The 'pue' parameter must be a float >= 1.0. Got {value!r} instead."
        raise InvalidParameterError(msg)
    return float(value)


def pue_for(location: Location, *, override: float | None = None) -> Pue:
    """The PUE to apply at a location.

    Own hardware (no cloud provider): 1.0, CodeCarbon's default, i.e. no facility overhead
    counted unless the user sets one (a machine room's PUE is not knowable from here).
    Cloud: the provider's fleet-wide PUE from ``pue/pue_reference_values.csv``, the
    ``provider_fleet`` row of the most recent vintage (Green Algorithms 2023: GCP 1.12,
    AWS 1.2, Azure 1.12). ``override`` wins.

    Args:
        location: Where the run happens.
        override: A PUE the user supplies (>= 1.0).

    Returns:
        The PUE with its source.

    Raises:
        InvalidParameterError: If ``override`` is not a number >= 1.0.
    """
    applies_to = location.cloud_provider or OWN_HARDWARE
    if override is not None:
        return Pue(value=validate_pue(override), source="user", applies_to=applies_to)
    rows = read_csv(_tables.PUE_FILE)
    if location.cloud_provider is not None:
        fleet = [
            r
            for r in rows
            if r["scope"] == "provider_fleet" and r["provider"] == location.cloud_provider
        ]
        if fleet:
            best = max(fleet, key=lambda r: _vintage(r["vintage"]))
            return Pue(value=float(best["pue"]), source=_row_source(best), applies_to=applies_to)
    default = next(r for r in rows if r["scope"] == "none" and r["pue"].strip())
    source = (
        f"no facility overhead assumed: {_row_source(default)}; "
        "pass --pue or set WATTWISE_PUE to count one"
    )
    return Pue(value=float(default["pue"]), source=source, applies_to=applies_to)

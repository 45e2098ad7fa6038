"""Coefficients and bands of the CPU and DRAM models, calibrated on SPECpower_ssj2008.

SPECpower_ssj2008 publishes the measured wall (AC) power of real servers at active idle and
at 10 %, 20 %, …, 100 % load. ``scripts/fit_calibration.py`` fits, from those results, what
the models need and writes two shipped tables under ``wattwise/data/calibration/``
(provenance in ``wattwise/data/PROVENANCE.md``); the raw SPEC table is not shipped:

``specpower_coefficients.csv``
    ``kind,key,idle,max,unit,n_servers,n_points,source``. ``architecture`` rows: idle and
    busy watts per hardware thread of one microarchitecture. ``ccf-scale``: the factors
    that turn a Cloud Carbon Footprint row (whole-server watts per vCPU, memory included)
    into the same quantity as a fitted row, for architectures SPECpower has no results
    for. ``tdp-fraction``: idle and busy power as fractions of TDP per thread.
    ``default``: watts per thread when nothing is known. ``dram``: memory watts per GB.
``specpower_bands.csv``
    ``rule_class,load_range,band_fraction,coverage,n_servers,n_points,method``: the
    half-width of the 90 % interval of measured / predicted host power, estimated out of
    sample, per rule class and load range.

What a modelled figure covers: ``cpu-model`` + ``dram-model`` together are the host's
**wall power** share (CPU, memory, fans, disks, power-supply losses): that is what SPECpower
measures and what the coefficients are fitted to. ``dram-model`` is the memory's part of it
(W per GB fitted jointly), ``cpu-model`` the rest; neither is counted twice.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping

from wattwise.data import read_csv
from wattwise.exceptions import MeterUnavailableError

COEFFICIENTS_FILE = "calibration/specpower_coefficients.csv"
BANDS_FILE = "calibration/specpower_bands.csv"

#: Rule classes that have a band: an architecture row fitted on SPECpower, for
#: architectures whose SPECpower servers date (median hardware availability) from 2013 on
#: or from before; a CCF row (architectures without SPECpower results, all 2020 or later);
#: a TDP table; the per-thread default. ``arch-ccf-older`` is reported by the benchmark
#: but never used (every CCF-only row is a recent architecture).
RULE_CLASSES: tuple[str, ...] = (
    "arch-specpower-recent",
    "arch-specpower-older",
    "arch-ccf",
    "arch-ccf-older",
    "tdp-table",
    "default",
)
#: An architecture is "recent" when the median year of its SPECpower servers is this or later.
RECENT_FROM_YEAR = 2013
#: Load ranges of the bands, by mean utilisation: idle (< 5 %), low (5-25 %), active
#: (25-100 %), and all of them pooled.
LOAD_RANGES: tuple[str, ...] = ("idle", "low", "active", "all")
#: The coverage every band is set to.
COVERAGE = 0.9


def load_range_of(utilisation: float) -> str:
    """The band's load range for a mean machine utilisation in [0, 1].

    SPECpower's levels fall in them as: active idle -> ``idle``; 10 % and 20 % ->
    ``low``; 30 %-100 % -> ``active``.
    """
    if utilisation < 0.05:
        return "idle"
    if utilisation < 0.25:
        return "low"
    return "active"


@dataclasses.dataclass(frozen=True)
class Coefficient:
    """One row of the coefficients table.

    Attributes:
        kind: ``architecture``, ``ccf-scale``, ``tdp-fraction``, ``default`` or ``dram``.
        key: The microarchitecture for ``architecture`` rows, else ``all``.
        idle: Idle figure (unit as ``unit``).
        max: Figure at 100 % load.
        unit: ``W/thread``, ``ratio`` (to a CCF row), ``fraction of TDP/thread`` or ``W/GB``.
        n_servers: SPECpower results it was fitted on.
        n_points: Load levels it was fitted on.
        source: How it was made, from which data.
        band_class: For ``architecture`` rows, the rule class whose band applies
            (``arch-specpower-recent`` or ``arch-specpower-older``); else "".
    """

    kind: str
    key: str
    idle: float
    max: float
    unit: str
    n_servers: int
    n_points: int
    source: str
    band_class: str = ""


@dataclasses.dataclass(frozen=True)
class Band:
    """A 90 % interval of measured / predicted host power, for one rule class and load range.

    Attributes:
        rule_class: One of ``RULE_CLASSES``.
        load_range: One of ``LOAD_RANGES``.
        band_fraction: Relative half-width: measured is within ±band_fraction of the
            prediction for 90 % of points out of sample.
        coverage: The share of points inside the band, each server's band estimated
            without that server (nested out of sample).
        n_servers: SPECpower results behind it.
        n_points: Load points behind it.
        method: How it was estimated.
    """

    rule_class: str
    load_range: str
    band_fraction: float
    coverage: float
    n_servers: int
    n_points: int
    method: str

    def meaning(self) -> str:
        """One sentence for the record: what this band means and where it comes from."""
        where = {
            "idle": "at idle",
            "low": "at 10-20 % load",
            "active": "at 30-100 % load",
            "all": "all load levels pooled",
        }[self.load_range]
        return (
            f"{COVERAGE * 100:.0f} % interval of host wall power, from {self.n_servers} "
            f"SPECpower_ssj2008 servers ({self.n_points} load points, {where}), out of "
            f"sample ({self.method}); {self.coverage * 100:.1f} % of points fell inside "
            "when checked out of sample."
        )


@dataclasses.dataclass(frozen=True)
class Calibration:
    """Everything the CPU and DRAM models take from SPECpower.

    Attributes:
        architectures: Fitted per-thread rows by microarchitecture label.
        ccf_scale: ``(idle, max)`` factors applied to CCF rows without SPECpower data.
        tdp_fraction: ``(idle, max)`` fractions of TDP per thread.
        default_w_per_thread: ``(idle, max)`` W per thread when nothing matched.
        dram_w_per_gb: Memory's share of wall power, W per GB installed.
        rows: Every coefficient row, by ``(kind, key)``.
        bands: Every band, by ``(rule_class, load_range)``.
    """

    architectures: Mapping[str, Coefficient]
    ccf_scale: tuple[float, float]
    tdp_fraction: tuple[float, float]
    default_w_per_thread: tuple[float, float]
    dram_w_per_gb: float
    rows: Mapping[tuple[str, str], Coefficient]
    bands: Mapping[tuple[str, str], Band]

    @classmethod
    def from_rows(cls, rows: list[Coefficient], bands: list[Band]) -> Calibration:
        """Build from table rows (the fitting script builds one per left-out server)."""
        by_key = {(r.kind, r.key): r for r in rows}

        def pair(kind: str) -> tuple[float, float]:
            row = by_key.get((kind, "all"))
            if row is None:
                msg = f"The calibration has no {kind!r} row; reinstall wattwise."
                raise MeterUnavailableError(msg)
            return row.idle, row.max

        dram = by_key.get(("dram", "all"))
        if dram is None:
            msg = "The calibration has no 'dram' row; reinstall wattwise."
            raise MeterUnavailableError(msg)
        return cls(
            architectures={r.key: r for r in rows if r.kind == "architecture"},
            ccf_scale=pair("ccf-scale"),
            tdp_fraction=pair("tdp-fraction"),
            default_w_per_thread=pair("default"),
            dram_w_per_gb=dram.idle,
            rows=by_key,
            bands={(b.rule_class, b.load_range): b for b in bands},
        )

    def band(self, rule_class: str, load_range: str = "all") -> Band | None:
        """The band for a rule class and load range, or None when none was estimated."""
        return self.bands.get((rule_class, load_range))


def _int(text: str) -> int:
    return int(float(text)) if text.strip() else 0


@functools.cache
def shipped_calibration() -> Calibration:
    """The calibration shipped in ``wattwise/data/calibration/`` (read once per process).

    Raises:
        MeterUnavailableError: A shipped table is missing a required row.
    """
    rows = [
        Coefficient(
            kind=r["kind"],
            key=r["key"],
            idle=float(r["idle"]),
            max=float(r["max"]),
            unit=r["unit"],
            n_servers=_int(r["n_servers"]),
            n_points=_int(r["n_points"]),
            source=r["source"],
            band_class=r.get("band_class") or "",
        )
        for r in read_csv(COEFFICIENTS_FILE)
    ]
    bands = [
        Band(
            rule_class=r["rule_class"],
            load_range=r["load_range"],
            band_fraction=float(r["band_fraction"]),
            coverage=float(r["coverage"]),
            n_servers=_int(r["n_servers"]),
            n_points=_int(r["n_points"]),
            method=r["method"],
        )
        for r in read_csv(BANDS_FILE)
    ]
    return Calibration.from_rows(rows, bands)

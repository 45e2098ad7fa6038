"""DRAM energy estimated from the installed memory size, where no RAPL DRAM counter exists.

Machine-wide DRAM power is constant: ``P = total_GiB * W_per_GB``, with memory's share of
server wall power per GB fitted on SPECpower_ssj2008 jointly with the CPU model's
per-thread coefficients (``calibration/specpower_coefficients.csv`` row ``dram``; see
``wattwise.meters._calibration``). Green Algorithms' 0.3725 W/GB and Cloud Carbon
Footprint's 0.392 W/GB are recorded as alternatives not used: added to per-thread figures
fitted on whole-server power they count memory twice, and on 2017-2021 servers they exceed
the server's whole idle draw. Memory capacity is counted in GiB (2**30 bytes), the unit
DIMM sizes are sold in.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import ClassVar

from wattwise.data import read_csv
from wattwise.exceptions import InvalidParameterError, MeterUnavailableError
from wattwise.meters._base import Availability, BaseMeter, Component, MeterInfo, Method, clause
from wattwise.meters._calibration import (
    BANDS_FILE,
    COEFFICIENTS_FILE,
    Calibration,
    shipped_calibration,
)

_GA_REFERENCE_FILE = "reference/greenalgorithms_referenceValues.csv"
_CONSTANTS_FILE = "reference/methodology_constants.csv"
_BYTES_PER_GIB = 2**30


#: The CPU rule class whose band the DRAM figure takes (see ``DramModelMeter.info``):
#: architectures from 2013 on, the machines wattwise runs on.
DRAM_BAND_CLASS = "arch-specpower-recent"


def memory_power_w_per_gb(calibration: Calibration | None = None) -> tuple[float, str]:
    """Memory's share of wall power, W per GB, fitted on SPECpower, and its source text."""
    cal = calibration or shipped_calibration()
    row = cal.rows[("dram", "all")]
    return cal.dram_w_per_gb, f"{COEFFICIENTS_FILE} row dram: {row.source}"


def green_algorithms_w_per_gb() -> tuple[float, str]:
    """Green Algorithms' memory power, W per GB, and its source (the alternative not used)."""
    for row in read_csv(_GA_REFERENCE_FILE, skip_rows=1):
        if row["variable"] == "memoryPower":
            return float(row["value"]), row["source"]
    msg = f"The shipped file {_GA_REFERENCE_FILE} has no memoryPower row; reinstall wattwise."
    raise MeterUnavailableError(msg)


def _alternatives() -> str:
    ga, ga_source = green_algorithms_w_per_gb()
    ccf = "0.392 W/GB"
    for row in read_csv(_CONSTANTS_FILE):
        if row["constant"] == "ccf_memory_energy":
            ccf = f"{row['value']} {row['unit']} ({row['source_reference']})"
    return (
        f"Alternatives not used: Green Algorithms' memoryPower {ga} W/GB ({ga_source}) and "
        f"Cloud Carbon Footprint's {ccf}. Both are DRAM-only figures meant to be added to a "
        "CPU figure; added to per-thread figures fitted on whole-server power they count "
        "memory twice (benchmarks/calibration.py shows the over-prediction)."
    )


class DramModelMeter(BaseMeter):
    """Machine-wide DRAM energy = installed GiB x W/GB x elapsed time.

    Args:
        total_bytes: Installed memory; default ``psutil.virtual_memory().total``.
        clock: Monotonic seconds (``time.monotonic``); injectable for tests.
        calibration: SPECpower calibration; default: the shipped one.

    Raises:
        InvalidParameterError: ``total_bytes`` is not a positive int.
    """

    name: ClassVar[str] = "dram-model"
    method: ClassVar[Method] = "model"
    covers: ClassVar[tuple[Component, ...]] = ("dram",)
    preference: ClassVar[int] = 80
    way_out: ClassVar[str] = (
        "pass total_bytes to DramModelMeter or leave 'dram-model' out of meters"
    )

    def absence(self, component: str, availability: Availability) -> str:
        """Why no estimate, as a clause."""
        return f"no memory size ({clause(availability.reason)})"

    def __init__(
        self,
        total_bytes: int | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        calibration: Calibration | None = None,
    ) -> None:
        if total_bytes is not None and (
            isinstance(total_bytes, bool) or not isinstance(total_bytes, int) or total_bytes <= 0
        ):
            msg = (
                "The 'total_bytes' parameter of DramModelMeter must be an int in the range "
                f"(0, inf) or None. Got {total_bytes!r} instead."
            )
            raise InvalidParameterError(msg)
        self._total_bytes = total_bytes
        self._clock = clock
        self._cal = calibration
        self._t0: float | None = None

    @property
    def total_bytes(self) -> int:
        """Installed memory in bytes (asks psutil once when not given).

        Raises:
            MeterUnavailableError: psutil is not installed and no size was given.
        """
        if self._total_bytes is None:
            try:
                import psutil
            except ImportError as err:
                msg = (
                    "Cannot estimate DRAM energy: psutil is not installed and no memory size "
                    "was given. Install it with: pip install psutil, or pass total_bytes."
                )
                raise MeterUnavailableError(msg) from err
            self._total_bytes = int(psutil.virtual_memory().total)
        return self._total_bytes

    @property
    def power_w(self) -> float:
        """Constant DRAM power of this machine, W."""
        w_per_gb, _ = memory_power_w_per_gb(self._cal)
        return self.total_bytes / _BYTES_PER_GIB * w_per_gb

    def _probe(self) -> Availability:
        """Check that the memory size is known."""
        try:
            power = self.power_w
            w_per_gb, _ = memory_power_w_per_gb(self._cal)
        except MeterUnavailableError as err:
            return Availability(False, str(err), "Install it with: pip install psutil.")
        except Exception as err:
            return Availability(
                False,
                f"The DRAM model meter could not start: {err}.",
                "Run 'wattwise doctor --debug' and report the output.",
            )
        gib = self.total_bytes / _BYTES_PER_GIB
        return Availability(
            True, f"DRAM energy estimated as {gib:.1f} GiB x {w_per_gb} W/GB = {power:.2f} W."
        )

    def components(self) -> tuple[Component, ...]:
        """``("dram",)``."""
        return ("dram",)

    def read(self) -> dict[str, float]:
        """Cumulative machine-wide DRAM joules since the first read (first call: 0)."""
        power = self.power_w
        now = self._clock()
        if self._t0 is None:
            self._t0 = now
        return {"dram:0": power * max(0.0, now - self._t0)}

    def info(self) -> MeterInfo:
        """The memory size, the W/GB figure and its source, and the calibrated band.

        SPECpower measures whole servers, never memory alone, so the DRAM figure is
        calibrated only as part of the host figure (cpu-model + dram-model): it takes the
        host band of the architecture rows, and the record says so.
        """
        w_per_gb, source = memory_power_w_per_gb(self._cal)
        gib = self.total_bytes / _BYTES_PER_GIB
        cal = self._cal or shipped_calibration()
        band = cal.band(DRAM_BAND_CLASS, "all")
        if band is None:
            fraction: float | None = None
            band_source = f"No calibrated band for {DRAM_BAND_CLASS!r} in {BANDS_FILE}."
            meaning = "no band: not calibrated"
        else:
            fraction = band.band_fraction
            meaning = (
                f"{band.meaning()} Memory alone is not measured by SPECpower: this is the "
                "band of the host figure (cpu-model + dram-model) for recent (2013 on) "
                "architecture rows fitted on SPECpower, applied to its memory part."
            )
            band_source = f"{BANDS_FILE} row ({band.rule_class}, {band.load_range}): {meaning}"
        return MeterInfo(
            name=self.name,
            method=self.method,
            source=(
                f"{gib:.2f} GiB installed x {w_per_gb:.4f} W/GB (memory's share of server wall "
                f"power, SPECpower calibration) = {gib * w_per_gb:.3f} W, constant."
            ),
            assumptions=(
                f"DRAM power = {w_per_gb:.4f} W per GB of installed memory, independent of "
                f"load: {source}.",
                "The figure is memory's share of the host's wall power (power-supply losses "
                "included); cpu-model covers the rest of the host, so the two add up to the "
                "host without counting memory twice.",
                _alternatives(),
                "Memory size = psutil.virtual_memory().total (or the value given), in GiB.",
                "Figures are machine-wide; attribution to a process tree happens in "
                "wattwise.tracking.",
                f"Band ±{fraction * 100:.0f} %: {meaning}"
                if fraction is not None
                else f"Band: {meaning}.",
            ),
            band_fraction=fraction,
            band_source=band_source,
            details={
                "total_bytes": self.total_bytes,
                "total_gib": gib,
                "w_per_gb": w_per_gb,
                "power_w": gib * w_per_gb,
                "band_class": DRAM_BAND_CLASS,
                "covers": "memory's share of host wall power (SPECpower calibration)",
            },
            band_meaning=meaning,
        )

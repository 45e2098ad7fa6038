"""DRAM energy estimated from the installed memory size, where no RAPL DRAM counter exists.

Machine-wide DRAM power is constant: ``P = total_GiB * W_per_GB``, with Green Algorithms'
0.3725 W/GB (``reference/greenalgorithms_referenceValues.csv`` row ``memoryPower``). Cloud
Carbon Footprint's 0.392 W/GB (``reference/methodology_constants.csv`` row
``ccf_memory_energy``) is the recorded alternative. Memory capacity is counted in GiB
(2**30 bytes), the unit DIMM sizes are sold in.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import ClassVar

from wattwise.data import read_csv
from wattwise.exceptions import InvalidParameterError, MeterUnavailableError
from wattwise.meters._base import Availability, BaseMeter, Component, MeterInfo, Method
from wattwise.meters._hardware import uncertainty_band

_GA_REFERENCE_FILE = "reference/greenalgorithms_referenceValues.csv"
_CONSTANTS_FILE = "reference/methodology_constants.csv"
_BYTES_PER_GIB = 2**30


def memory_power_w_per_gb() -> tuple[float, str]:
    """Green Algorithms' memory power, W per GB, and its source text."""
    for row in read_csv(_GA_REFERENCE_FILE, skip_rows=1):
        if row["variable"] == "memoryPower":
            return float(row["value"]), row["source"]
    msg = f"The shipped file {_GA_REFERENCE_FILE} has no memoryPower row; reinstall wattwise."
    raise MeterUnavailableError(msg)


def _ccf_alternative() -> str:
    for row in read_csv(_CONSTANTS_FILE):
        if row["constant"] == "ccf_memory_energy":
            return (
                f"Alternative not used: Cloud Carbon Footprint's {row['value']} "
                f"{row['unit']} ({row['source_reference']}), from {row['used_by']}."
            )
    return "Alternative not used: Cloud Carbon Footprint's 0.392 W/GB."


class DramModelMeter(BaseMeter):
    """Machine-wide DRAM energy = installed GiB x W/GB x elapsed time.

    Args:
        total_bytes: Installed memory; default ``psutil.virtual_memory().total``.
        clock: Monotonic seconds (``time.monotonic``); injectable for tests.

    Raises:
        InvalidParameterError: ``total_bytes`` is not a positive int.
    """

    name: ClassVar[str] = "dram-model"
    method: ClassVar[Method] = "model"

    def __init__(
        self,
        total_bytes: int | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
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
        w_per_gb, _ = memory_power_w_per_gb()
        return self.total_bytes / _BYTES_PER_GIB * w_per_gb

    def probe(self) -> Availability:
        """Check that the memory size is known. Never raises."""
        try:
            power = self.power_w
            w_per_gb, _ = memory_power_w_per_gb()
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
        """The memory size, the W/GB figure and its source, and the ±band."""
        w_per_gb, ga_source = memory_power_w_per_gb()
        gib = self.total_bytes / _BYTES_PER_GIB
        band, band_source = uncertainty_band("model", "dram")
        return MeterInfo(
            name=self.name,
            method=self.method,
            source=(
                f"{gib:.2f} GiB installed x {w_per_gb} W/GB (Green Algorithms memoryPower) "
                f"= {gib * w_per_gb:.3f} W, constant."
            ),
            assumptions=(
                f"DRAM power = {w_per_gb} W per GB of installed memory, independent of load: "
                f"Green Algorithms referenceValues.csv memoryPower ({ga_source}).",
                _ccf_alternative(),
                "Memory size = psutil.virtual_memory().total (or the value given), in GiB.",
                "Figures are machine-wide; attribution to a process tree happens in "
                "wattwise.tracking.",
            ),
            band_fraction=band,
            band_source=band_source,
            details={
                "total_bytes": self.total_bytes,
                "total_gib": gib,
                "w_per_gb": w_per_gb,
                "power_w": gib * w_per_gb,
            },
        )

"""What a finished run cost: :class:`RunResult`."""

from __future__ import annotations

import dataclasses
from typing import Any

from wattwise.store import ComponentEnergy


@dataclasses.dataclass(frozen=True)
class RunResult:
    """What a finished run cost. Units are in the names.

    Attributes:
        id: Run id in the ledger.
        name: Run name.
        status: ``finished`` | ``failed`` | ``crashed``.
        exit_code: The command's exit code (``wattwise run``), else None.
        duration_s: Wall time in seconds.
        energy_j: Energy attributed to the run, all components, in joules (before PUE).
        energy_band_j: Half-width of the uncertainty band of ``energy_j``, in joules.
        machine_energy_j: Energy of the whole machine over the run, in joules.
        co2e_g: Operational emissions, energy × PUE × grid intensity, in gCO2e.
        co2e_band_g: Half-width of the band of ``co2e_g`` (energy band only), in gCO2e.
        region: Grid zone the intensity was taken for.
        intensity_g_per_kwh: Grid intensity used, in gCO2e per kWh.
        pue: Power usage effectiveness applied.
        components: Energy per component with method and source.
    """

    id: str
    name: str
    status: str
    exit_code: int | None
    duration_s: float
    energy_j: float
    energy_band_j: float
    machine_energy_j: float
    co2e_g: float
    co2e_band_g: float
    region: str | None
    intensity_g_per_kwh: float
    pue: float
    components: tuple[ComponentEnergy, ...]

    @property
    def energy_kwh(self) -> float:
        """``energy_j`` in kWh."""
        return self.energy_j / 3.6e6

    def to_dict(self) -> dict[str, Any]:
        """JSON shape, with the CLI's field names."""
        data = dataclasses.asdict(self)
        data["components"] = [c.to_dict() for c in self.components]
        return data

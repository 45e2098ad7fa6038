"""What a finished run cost: :class:`RunResult`, and how a notebook shows a run.

The rich display (``_repr_html_``) is one small table with inline styles: no script, no
fetched resource, and every piece of user text (names, sources) escaped.
"""

from __future__ import annotations

import dataclasses
import html
from collections.abc import Mapping, Sequence
from typing import Any

from wattwise import _units as units
from wattwise.store import ComponentEnergy

_TABLE = (
    'style="border-collapse:collapse;font-family:system-ui,sans-serif;font-size:13px;'
    'max-width:100%"'
)
_CELL = 'style="text-align:left;padding:2px 10px 2px 0;vertical-align:top"'
_HEAD = 'style="text-align:left;padding:2px 10px 4px 0;border-bottom:1px solid #8884"'


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

    def _repr_html_(self) -> str:
        """Jupyter's rich display: totals with their bands, then one row per component."""
        code = f", exit code {self.exit_code}" if self.exit_code is not None else ""
        rows = [
            ("Energy", f"{units.with_band(self.energy_j, self.energy_band_j)} attributed "
                       f"(whole machine {units.energy(self.machine_energy_j)})"),
            ("Carbon", f"{units.with_band(self.co2e_g, self.co2e_band_g, 'carbon')} at "
                       f"{units.short(self.intensity_g_per_kwh)} gCO2e/kWh "
                       f"({self.region or 'region unknown'}), PUE {units.short(self.pue)}"),
            ("Time", f"{units.duration(self.duration_s)}{code}"),
        ]  # fmt: skip
        parts = [(c.component, units.with_band(c.energy_j, c.band_j),
                  units.method_label(c.method), c.meter, c.source)
                 for c in self.components]  # fmt: skip
        return _html(self.id, self.name, self.status, rows, parts)


def run_html(
    run_id: str, name: str, state: str, so_far: Mapping[str, float] | None, region: str | None
) -> str:
    """The rich display of a run not yet ended: its state, and its cost so far if running.

    Args:
        run_id: The run's id.
        name: Its name (escaped here).
        state: ``created`` or ``running``.
        so_far: ``Run.snapshot()``'s figures, or None.
        region: The grid zone, or None.
    """
    rows: list[tuple[str, str]] = []
    if so_far is not None:
        rows = [
            ("Energy so far", units.with_band(so_far["energy_j"], so_far["energy_band_j"])),
            ("Carbon so far", f"{units.carbon(so_far['co2e_g'])} ({region or 'region unknown'})"),
            ("Time so far", units.duration(so_far["duration_s"])),
        ]
    elif state == "created":
        rows = [("Not started", "run.start() or 'with run:' starts measuring")]
    return _html(run_id, name, state, rows, [])


def _html(
    run_id: str, name: str, status: str, rows: Sequence[tuple[str, str]],
    parts: Sequence[tuple[str, str, str, str, str]],
) -> str:  # fmt: skip
    """One table: a caption, label/value rows, and the components when there are any."""
    esc = html.escape
    out = [
        f'<table class="wattwise-run" {_TABLE}>',
        f'<caption style="text-align:left;font-weight:600;padding-bottom:4px">wattwise run '
        f"{esc(run_id[:8])} &lsquo;{esc(name)}&rsquo; &middot; {esc(status)}</caption>",
    ]
    out += [f"<tr><th {_CELL}>{esc(label)}</th><td {_CELL} colspan=\"4\">{esc(value)}</td></tr>"
            for label, value in rows]  # fmt: skip
    if parts:
        heads = ("Component", "Energy", "Method", "Meter", "Source")
        out.append("<tr>" + "".join(f"<th {_HEAD}>{h}</th>" for h in heads) + "</tr>")
        out += ["<tr>" + "".join(f"<td {_CELL}>{esc(str(cell))}</td>" for cell in part)
                + "</tr>" for part in parts]  # fmt: skip
    out.append("</table>")
    return "\n".join(out)

"""Human formatting of figures: energy, carbon, durations, tables."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from wattwise.store import ComponentEnergy


def energy(joules: float) -> str:
    """``1234.5`` → ``"1.23 kJ"``; large figures also in kWh."""
    if joules >= 3.6e6:
        return f"{joules / 3.6e6:.3g} kWh"
    for factor, unit in ((1e6, "MJ"), (1e3, "kJ")):
        if joules >= factor:
            return f"{joules / factor:.3g} {unit}"
    return f"{joules:.3g} J"


def carbon(grams: float) -> str:
    """gCO2e with a readable unit."""
    if grams >= 1e6:
        return f"{grams / 1e6:.3g} tCO2e"
    if grams >= 1e3:
        return f"{grams / 1e3:.3g} kgCO2e"
    if grams >= 1:
        return f"{grams:.3g} gCO2e"
    return f"{grams * 1e3:.3g} mgCO2e"


def duration(seconds: float) -> str:
    """Seconds as ``12.3 s``, ``4 min 05 s`` or ``2 h 03 min``."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{int(seconds // 60)} min {int(seconds % 60):02d} s"
    return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60):02d} min"


def with_band(value: float, band: float | None, fmt: Any = energy) -> str:
    """``"412 J ± 165 J"``, or ``"412 J (band unknown)"``."""
    if band is None:
        return f"{fmt(value)} (band unknown)"
    if band == 0:
        return str(fmt(value))
    return f"{fmt(value)} ± {fmt(band)}"


_LABEL = {"counter": "measured", "sampled": "measured (sampled power)",
          "model": "estimated", "user": "user-given"}  # fmt: skip


def method_label(method: str) -> str:
    """``counter`` → ``measured``; ``model`` → ``estimated``."""
    return _LABEL.get(method, method)


def component_line(comp: ComponentEnergy) -> str:
    """``cpu 380 J ± 152 J estimated (cpu-model)``."""
    band = comp.band_j
    text = with_band(comp.energy_j, band) if band is not None else energy(comp.energy_j)
    return f"{comp.component} {text} {method_label(comp.method)} ({comp.meter})"


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A plain aligned text table."""
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines += [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows
    ]
    return "\n".join(lines)

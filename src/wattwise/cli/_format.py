"""Human formatting of figures for the terminal: built on :mod:`wattwise._units`."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from wattwise._units import carbon, duration, energy, method_label
from wattwise.store import ComponentEnergy

__all__ = ["carbon", "component_line", "duration", "energy", "method_label", "table",
           "with_band"]  # fmt: skip


def with_band(value: float, band: float | None, fmt: Callable[[float], str] = energy) -> str:
    """``"412 J ± 165 J"``, or ``"412 J (band unknown)"``."""
    if band is None:
        return f"{fmt(value)} (band unknown)"
    if band == 0:
        return fmt(value)
    return f"{fmt(value)} ± {fmt(band)}"


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

"""Readable figures shared by the CLI, reports and progress lines: energy, carbon, time, FLOPs.

Pure functions, no I/O; only cli/ prints them.
"""

from __future__ import annotations

import datetime as dt
import math

JOULES_PER_KWH = 3.6e6


def _num(value: float, digits: int = 3) -> str:
    """``value`` with ``digits`` significant figures, without exponent for usual magnitudes."""
    if value == 0 or not math.isfinite(value):
        return f"{value:g}"
    magnitude = math.floor(math.log10(abs(value)))
    decimals = max(0, digits - 1 - magnitude)
    text = f"{value:.{decimals}f}"
    return text


#: Prefixes below one unit, for tiny figures (a cache hit, a short function's carbon):
#: ``4.81 µJ``, never ``0.00000481 J``.
_SMALL = ((1e-3, "m"), (1e-6, "µ"), (1e-9, "n"))


def _small(value: float, unit: str) -> str:
    """``value`` (0 < |value| < 1) in ``unit`` with the prefix that keeps it from 1 to 999."""
    for factor, prefix in _SMALL:
        if abs(value) >= factor:
            return f"{_num(value / factor)} {prefix}{unit}"
    return f"{_num(value / _SMALL[-1][0])} {_SMALL[-1][1]}{unit}"


def energy(joules: float) -> str:
    """``1234.5`` → ``"1.23 kJ"``; from 3.6 MJ on, in kWh; below 1 J in mJ, µJ or nJ.

    For people only: machine outputs (``--json``, CSV, exports) keep joules.
    """
    if joules >= JOULES_PER_KWH:
        return f"{_num(joules / JOULES_PER_KWH)} kWh"
    for factor, unit in ((1e6, "MJ"), (1e3, "kJ")):
        if joules >= factor:
            return f"{_num(joules / factor)} {unit}"
    if joules == 0 or not math.isfinite(joules) or abs(joules) >= 1:
        return f"{_num(joules)} J"
    return _small(joules, "J")


def energy_parts(joules: float) -> tuple[str, str]:
    """``energy()`` split into number and unit, for headline cards."""
    number, unit = energy(joules).split(" ", 1)
    return number, unit


def carbon(grams: float) -> str:
    """gCO2e with a readable unit (ng, µg, mg, g, kg, t): ``6.33e-8`` → ``"63.3 ngCO2e"``.

    For people only: machine outputs (``--json``, CSV, exports) keep grams.
    """
    if grams >= 1e6:
        return f"{_num(grams / 1e6)} tCO2e"
    if grams >= 1e3:
        return f"{_num(grams / 1e3)} kgCO2e"
    if grams == 0 or not math.isfinite(grams) or abs(grams) >= 1:
        return f"{_num(grams)} gCO2e"
    return _small(grams, "gCO2e")


def carbon_parts(grams: float) -> tuple[str, str]:
    """``carbon()`` split into number and unit."""
    number, unit = carbon(grams).split(" ", 1)
    return number, unit


def duration(seconds: float) -> str:
    """Seconds as ``12.3 s``, ``4 min 05 s`` or ``2 h 03 min``."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{int(seconds // 60)} min {int(seconds % 60):02d} s"
    return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60):02d} min"


_PREFIXES = ((1e18, "E"), (1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k"))


def flops(count: float) -> str:
    """``3.2e12`` → ``"3.20 TFLOP"`` (a count of operations, not a rate)."""
    for factor, prefix in _PREFIXES:
        if count >= factor:
            return f"{_num(count / factor)} {prefix}FLOP"
    return f"{_num(count)} FLOP"


def rate(value: float, unit: str) -> str:
    """A per-joule figure with an SI prefix: ``rate(2.5e9, "FLOP/J")`` → ``"2.50 GFLOP/J"``."""
    for factor, prefix in _PREFIXES:
        if value >= factor:
            return f"{_num(value / factor)} {prefix}{unit}"
    return f"{_num(value)} {unit}"


def number(value: float, digits: int = 3) -> str:
    """A plain number with ``digits`` significant figures."""
    return _num(value, digits)


def short(value: float) -> str:
    """Up to 4 significant figures, no trailing zeros (``31.0`` → ``"31"``)."""
    return f"{value:.4g}"


def with_band(value: float, band: float | None, fmt: str = "energy") -> str:
    """``"412 J ± 165 J"``; ``"412 J (band unknown)"`` when the band is None."""
    show = energy if fmt == "energy" else carbon
    if band is None:
        return f"{show(value)} (band unknown)"
    if band == 0:
        return show(value)
    return f"{show(value)} ± {show(band)}"


def when(timestamp: float | None) -> str:
    """Unix seconds as ``2026-11-27 19:48 UTC``; ``"-"`` for None."""
    if timestamp is None:
        return "-"
    moment = dt.datetime.fromtimestamp(timestamp, tz=dt.timezone.utc)
    return moment.strftime("%Y-%m-%d %H:%M UTC")


_METHOD_LABEL = {
    "counter": "measured",
    "sampled": "measured (sampled power)",
    "model": "estimated",
    "user": "user-given",
}


def method_label(method: str) -> str:
    """``counter`` → ``measured``; ``model`` → ``estimated``; others unchanged."""
    return _METHOD_LABEL.get(method, method)

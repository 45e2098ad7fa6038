"""What an estimated (modelled) energy figure covers, read from the run records.

The CPU and DRAM model meters record ``details["covers"]``: their figures are the host's
wall-power share (CPU, memory, fans, disks, power-supply losses), calibrated on
SPECpower_ssj2008, not the CPU package a RAPL counter measures. Reports, the SCI boundary
and the Hugging Face card state it with the sentences made here, so all say the same.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any


def covers_by_meter(meters: Iterable[tuple[str, Mapping[str, Any]]]) -> dict[str, str]:
    """``{meter: what its figure covers}`` for modelled meters that record it.

    Args:
        meters: ``(meter name, record entry)`` pairs; an entry is a run record's
            ``meters[name]`` (with ``details``) or a report setup row (with ``covers``).
    """
    out: dict[str, str] = {}
    for name, info in meters:
        if not isinstance(info, Mapping) or info.get("method") != "model":
            continue
        details = info.get("details")
        covers = info.get("covers") or (
            details.get("covers") if isinstance(details, Mapping) else None
        )
        if covers:
            out.setdefault(str(name), str(covers))
    return out


def covers_lines(records: Iterable[Mapping[str, Any]]) -> list[str]:
    """One sentence per modelled meter in these run records: what its figure covers."""
    pairs = [(name, info) for rec in records for name, info in (rec.get("meters") or {}).items()]
    return [
        f"Estimated {name} energy covers the {covers}"
        for name, covers in sorted(covers_by_meter(pairs).items())
    ]

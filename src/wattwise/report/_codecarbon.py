"""CodeCarbon's ``emissions.csv``: one row per run, CodeCarbon's columns and units.

Units follow CodeCarbon, not wattwise: ``emissions`` in **kg** CO2e, ``emissions_rate`` in
kg/s, energies in kWh, powers in W, ``ram_total_size`` in GB, ``duration`` in s. The
columns are CodeCarbon 3's ``EmissionsData`` fields, in order.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from wattwise.store import RunRecord

COLUMNS = (
    "timestamp", "project_name", "run_id", "experiment_id", "duration", "emissions",
    "emissions_rate", "cpu_power", "gpu_power", "ram_power", "cpu_energy", "gpu_energy",
    "ram_energy", "energy_consumed", "water_consumed", "country_name", "country_iso_code",
    "region", "cloud_provider", "cloud_region", "os", "python_version", "codecarbon_version",
    "cpu_count", "cpu_model", "gpu_count", "gpu_model", "longitude", "latitude",
    "ram_total_size", "tracking_mode", "cpu_utilization_percent", "gpu_utilization_percent",
    "ram_utilization_percent", "ram_used_gb", "on_cloud", "pue", "wue",
)  # fmt: skip
"""CodeCarbon 3 ``emissions.csv`` header, in order."""

_KWH = 3.6e6
_COMPONENT_COLUMN = {"cpu": "cpu", "gpu": "gpu", "dram": "ram"}


def _as_uuid(text: str | None) -> str:
    if not text:
        return ""
    try:
        return str(uuid.UUID(hex=text))
    except ValueError:
        return text


def _iso3(iso2: str | None) -> str:
    if not iso2:
        return ""
    from wattwise.carbon import iso3_to_iso2

    for iso3, code in iso3_to_iso2().items():
        if code == iso2:
            return iso3
    return ""


def _country_name(iso2: str | None) -> str:
    if not iso2:
        return ""
    from wattwise.carbon import country_names

    return country_names().get(iso2, "")


def codecarbon_row(run: RunRecord, *, project_name: str) -> dict[str, Any]:
    """One run as a CodeCarbon ``emissions.csv`` row (CodeCarbon units).

    ``energy_consumed`` is the sum of the components (IT energy, kWh) and ``emissions``
    the run's operational carbon (kg), which includes the ``pue`` column's factor.
    Unknown figures are left empty; ``water_consumed`` and ``wue`` are 0, as CodeCarbon
    writes them when water is not tracked.

    Args:
        run: A run from the ledger.
        project_name: The ``project_name`` column.

    Returns:
        Column → value, for every column of :data:`COLUMNS`.
    """
    rec = run.record
    loc: Mapping[str, Any] = rec.get("location") or {}
    hw: Mapping[str, Any] = rec.get("hardware") or {}
    cpu: Mapping[str, Any] = hw.get("cpu") or {}
    env: Mapping[str, Any] = rec.get("environment") or {}
    gpus = [g for g in hw.get("gpus") or [] if isinstance(g, Mapping)]
    duration = run.duration_s
    energy = {"cpu": 0.0, "gpu": 0.0, "ram": 0.0}
    for comp in run.components:
        energy[_COMPONENT_COLUMN.get(comp.component, "cpu")] += comp.energy_j
    kg = run.co2e_g / 1000.0
    threads = cpu.get("threads")
    cpu_time = rec.get("cpu_time_s")
    util = (
        round(100.0 * cpu_time / duration / threads, 2)
        if isinstance(cpu_time, (int, float)) and isinstance(threads, int) and threads > 0
        and duration > 0 else ""
    )  # fmt: skip
    gpu_names: dict[str, int] = {}
    for g in gpus:
        gpu_names[str(g.get("name"))] = gpu_names.get(str(g.get("name")), 0) + 1
    end = run.ended_at if run.ended_at is not None else run.started_at + duration
    row: dict[str, Any] = {
        "timestamp": dt.datetime.fromtimestamp(end, tz=dt.timezone.utc).strftime(
            "%Y-%m-%dT%H:%M:%S"),
        "project_name": project_name,
        "run_id": _as_uuid(run.id),
        "experiment_id": _as_uuid(run.study_id),
        "duration": duration,
        "emissions": kg,
        "emissions_rate": kg / duration if duration > 0 else 0.0,
        "cpu_power": energy["cpu"] / duration if duration > 0 else 0.0,
        "gpu_power": energy["gpu"] / duration if duration > 0 else 0.0,
        "ram_power": energy["ram"] / duration if duration > 0 else 0.0,
        "cpu_energy": energy["cpu"] / _KWH,
        "gpu_energy": energy["gpu"] / _KWH,
        "ram_energy": energy["ram"] / _KWH,
        "energy_consumed": sum(energy.values()) / _KWH,
        "water_consumed": 0.0,
        "country_name": _country_name(loc.get("country_iso2")),
        "country_iso_code": _iso3(loc.get("country_iso2")),
        "region": (loc.get("subdivision") or (loc.get("zone") if loc.get("zone") !=
                   loc.get("country_iso2") else "") or ""),
        "cloud_provider": loc.get("cloud_provider") or "",
        "cloud_region": loc.get("cloud_region") or "",
        "os": env.get("platform") or env.get("os") or "",
        "python_version": env.get("python") or "",
        "codecarbon_version": "",
        "cpu_count": threads if isinstance(threads, int) else "",
        "cpu_model": cpu.get("model_name") or "",
        "gpu_count": len(gpus),
        "gpu_model": ", ".join(f"{n} x {name}" for name, n in gpu_names.items()),
        "longitude": "",
        "latitude": "",
        "ram_total_size": hw.get("ram_gb") if hw.get("ram_gb") is not None else "",
        "tracking_mode": "process",
        "cpu_utilization_percent": util,
        "gpu_utilization_percent": "",
        "ram_utilization_percent": "",
        "ram_used_gb": "",
        "on_cloud": "Y" if loc.get("cloud_provider") else "N",
        "pue": float((rec.get("pue") or {}).get("value", 1.0)),
        "wue": 0.0,
    }  # fmt: skip
    return row


def render_codecarbon_csv(runs: Sequence[RunRecord], *, project_name: str) -> str:
    """``emissions.csv`` text for the runs: CodeCarbon's header, one row per run.

    Args:
        runs: Runs to export (top-level runs; nested ones are inside their parents).
        project_name: The ``project_name`` column.

    Returns:
        CSV text with a header line.
    """
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for run in runs:
        writer.writerow(codecarbon_row(run, project_name=project_name))
    return out.getvalue()

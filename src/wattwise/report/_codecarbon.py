"""CodeCarbon's ``emissions.csv``: one row per run, CodeCarbon's columns and units.

Units follow CodeCarbon, not wattwise: ``emissions`` in **kg** CO2e, ``emissions_rate`` in
kg/s, energies in kWh, powers in W, ``ram_total_size`` and ``ram_used_gb`` in GB (GiB,
2**30 bytes, as CodeCarbon's ``psutil`` figures), ``duration`` in s. The columns are
CodeCarbon 3's ``EmissionsData`` fields, in order (``mlco2/codecarbon``
``codecarbon/output_methods/emissions_data.py``).

Meanings follow CodeCarbon too: its energies include the data centre's PUE (CodeCarbon
multiplies each reading by ``pue`` before summing), its powers do not. What wattwise does
not know stays empty, never 0: ``gpu_utilization_percent`` when the run used GPUs (the
sampler does not read GPU utilisation), ``ram_*`` utilisation when memory was not measured
by the DRAM model under its own attribution rule (see :func:`codecarbon_row`),
``water_consumed`` and ``wue`` (no water-usage figure is shipped or configured),
``longitude`` and ``latitude`` (wattwise never geolocates) and ``codecarbon_version``.
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


def _ram_use(run: RunRecord, ram_gb: object) -> tuple[Any, Any]:
    """``ram_utilization_percent`` and ``ram_used_gb`` of the run's process tree, or empty.

    The DRAM model's machine-wide power is constant and the run's DRAM energy is that
    power times the tree's resident memory / physical memory, interval by interval, so
    run energy / machine energy is the time-weighted mean of that fraction. It holds only
    for the DRAM model under that rule: a RAPL DRAM counter's power varies (the ratio is
    then power-weighted), a job's election charges whole devices, a meter that stopped
    mid-run mixes two rules; those runs leave both columns empty.
    """
    from wattwise.meters import COMPONENT_ATTRIBUTION

    dram = [c for c in run.components if c.component == "dram"]
    if len(dram) != 1:
        return "", ""
    comp = dram[0]
    info = comp.info or {}
    if (comp.meter != "dram-model" or info.get("fallback")
            or info.get("attribution", COMPONENT_ATTRIBUTION["dram"])
            != COMPONENT_ATTRIBUTION["dram"] or comp.machine_energy_j <= 0):  # fmt: skip
        return "", ""
    share = min(1.0, comp.energy_j / comp.machine_energy_j)
    used = round(share * ram_gb, 3) if isinstance(ram_gb, (int, float)) else ""
    return round(100.0 * share, 2), used


def codecarbon_row(run: RunRecord, *, project_name: str) -> dict[str, Any]:
    """One run as a CodeCarbon ``emissions.csv`` row (CodeCarbon units and meanings).

    ``*_energy`` and ``energy_consumed`` are the run's IT energy times the ``pue`` column
    (kWh), as CodeCarbon's, so ``emissions`` (kg, the run's operational carbon) is
    ``energy_consumed`` × the grid intensity; ``*_power`` is mean IT power (W).
    ``cpu_utilization_percent`` is the process tree's CPU time over the run's duration
    and the machine's threads (``tracking_mode`` is ``process``: wattwise attributes to
    the run's processes); ``gpu_utilization_percent`` is 0 when the machine has no GPU;
    ``ram_utilization_percent`` and ``ram_used_gb`` are the tree's mean resident memory
    (:func:`_ram_use`). Unknown figures are left empty (module docstring).

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
    pue = float((rec.get("pue") or {}).get("value", 1.0))
    ram_util, ram_used = _ram_use(run, hw.get("ram_gb"))
    has_gpus = isinstance(hw.get("gpus"), list)
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
        "cpu_energy": energy["cpu"] * pue / _KWH,
        "gpu_energy": energy["gpu"] * pue / _KWH,
        "ram_energy": energy["ram"] * pue / _KWH,
        "energy_consumed": sum(energy.values()) * pue / _KWH,
        "water_consumed": "",
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
        "gpu_count": len(gpus) if has_gpus else "",
        "gpu_model": ", ".join(f"{n} x {name}" for name, n in gpu_names.items()),
        "longitude": "",
        "latitude": "",
        "ram_total_size": hw.get("ram_gb") if hw.get("ram_gb") is not None else "",
        "tracking_mode": "process",
        "cpu_utilization_percent": util,
        "gpu_utilization_percent": 0.0 if has_gpus and not gpus else "",
        "ram_utilization_percent": ram_util,
        "ram_used_gb": ram_used,
        "on_cloud": "Y" if loc.get("cloud_provider") else "N",
        "pue": pue,
        "wue": "",
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

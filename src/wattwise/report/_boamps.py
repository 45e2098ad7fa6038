"""BoAmps: Boavizta's JSON format for reporting the energy of an AI task (one report).

The report follows the schemas of ``Boavizta/BoAmps`` ``model/*.json`` (format 1.1.0,
JSON Schema draft 4): ``header``, ``task``, ``measures``, ``system``, ``software``,
``infrastructure``, ``environment``, ``quality``. wattwise fills what its ledger knows:

* ``measures``: one per counted run (nested runs are inside their parents):
  ``measurementMethod`` ``wattwise``, its ``version``, the CPU and GPU meters
  (``cpuTrackingMode``, ``gpuTrackingMode``: ``cpu-rapl``, ``cpu-model``, ``gpu-nvml``...),
  the process tree's ``averageUtilizationCpu``, ``powerConsumption`` (the run's IT energy in
  **kWh**, before PUE: what was measured), ``measurementDuration`` (s) and
  ``measurementDateTime`` (the start, UTC);
* ``infrastructure``: ``publicCloud`` with its provider when the run's location is a cloud
  region, else ``onPremise``; components ``cpu`` (model, sockets), ``gpu`` (model, count,
  memory in GiB), ``ram`` (1, its size in GiB), each with ``share``: the runs' attributed
  energy over the machine's for that component;
* ``system.os``, ``software`` (``python`` and its version), ``environment`` (country, the
  place, the grid intensity applied, energy-weighted when the runs differ), ``quality``
  from the energy's uncertainty band (``high`` within ±10 %, ``medium`` ±25 %, ``low``
  ±50 %; none beyond), ``header`` (format version, a report id, the time of writing).

What only the user knows (``task``: stage, family, algorithms, datasets; ``publisher``;
``licensing``) comes from a context file: a JSON object shaped like the report, merged in
(its values win, except ``measures``, which are the ledger's). Without a complete ``task``
the report is written with ``reportStatus: draft`` and does not validate until it is added.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from wattwise.exceptions import InvalidParameterError
from wattwise.store import RunRecord

#: The BoAmps release whose schemas the report follows (``RELEASENOTE.md``).
FORMAT_VERSION = "1.1.0"
SPECIFICATION_URI = "https://github.com/Boavizta/BoAmps/tree/main/model"
#: The top-level keys a context file may hold (``measures`` is the ledger's).
CONTEXT_KEYS = ("header", "task", "system", "software", "infrastructure", "environment",
                "quality")  # fmt: skip
#: ``quality`` by the energy's relative band: BoAmps' ±10 %, ±25 %, ±50 % classes.
QUALITY_BANDS = ((0.10, "high"), (0.25, "medium"), (0.50, "low"))

_KWH = 3.6e6
_BYTES_PER_GIB = 2**30
_CPU_VENDORS = {"GenuineIntel": "intel", "AuthenticAMD": "amd"}


def load_context(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A BoAmps context file: a JSON object with some of :data:`CONTEXT_KEYS`.

    Raises:
        InvalidParameterError: The file cannot be read, is not JSON, is not an object, or
            holds a key BoAmps does not have (or ``measures``).
    """
    where = Path(path)
    try:
        text = where.read_text(encoding="utf-8")
    except OSError as err:
        msg = (
            f"Cannot read the BoAmps context {where}: {err.strerror or err}. Pass a readable "
            "JSON file."
        )
        raise InvalidParameterError(msg) from err
    try:
        data = json.loads(text)
    except ValueError as err:
        msg = f"The BoAmps context {where} is not JSON ({err}). Fix the file or leave it out."
        raise InvalidParameterError(msg) from err
    if not isinstance(data, dict):
        msg = (
            f"The BoAmps context {where} holds a {type(data).__name__}; it must be a JSON "
            'object shaped like a BoAmps report, e.g. {"task": {"taskStage": "training", ...}}.'
        )
        raise InvalidParameterError(msg)
    check_context(data, where=str(where))
    return data


def check_context(context: Mapping[str, Any], *, where: str = "the BoAmps context") -> None:
    """Raise InvalidParameterError for a key a context may not hold."""
    for key, value in context.items():
        if key == "measures":
            msg = (
                f"{where} sets 'measures': they are the ledger's measurements, written by "
                "wattwise. Remove 'measures' from it."
            )
            raise InvalidParameterError(msg)
        if key not in CONTEXT_KEYS:
            msg = (
                f"{where} has the key {key!r}, which BoAmps reports do not have; use "
                f"{', '.join(CONTEXT_KEYS)}."
            )
            raise InvalidParameterError(msg)
        if key != "quality" and not isinstance(value, dict):
            msg = f"{where}: {key!r} must be a JSON object, not {type(value).__name__}."
            raise InvalidParameterError(msg)


def _when(timestamp: float) -> str:
    return dt.datetime.fromtimestamp(timestamp, tz=dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def _distinct(values: Sequence[Any]) -> list[Any]:
    return list(dict.fromkeys(v for v in values if v not in (None, "")))


def _measure(run: RunRecord) -> dict[str, Any]:
    from wattwise import __version__

    rec = run.record
    meters: dict[str, list[str]] = {}
    for comp in run.components:
        meters.setdefault(comp.component, []).append(comp.meter)
    out: dict[str, Any] = {"measurementMethod": "wattwise", "version": __version__}
    if meters.get("cpu"):
        out["cpuTrackingMode"] = ", ".join(_distinct(meters["cpu"]))
    if meters.get("gpu"):
        out["gpuTrackingMode"] = ", ".join(_distinct(meters["gpu"]))
    threads = ((rec.get("hardware") or {}).get("cpu") or {}).get("threads")
    cpu_time = rec.get("cpu_time_s")
    if (isinstance(cpu_time, (int, float)) and isinstance(threads, int) and threads > 0
            and run.duration_s > 0):  # fmt: skip
        out["averageUtilizationCpu"] = round(min(1.0, cpu_time / run.duration_s / threads), 4)
    out["powerConsumption"] = run.energy_j / _KWH
    out["measurementDuration"] = run.duration_s
    out["measurementDateTime"] = _when(run.started_at)
    return out


def _components(runs: Sequence[RunRecord]) -> list[dict[str, Any]]:
    energy: dict[str, float] = {}
    machine: dict[str, float] = {}
    for run in runs:
        for comp in run.components:
            energy[comp.component] = energy.get(comp.component, 0.0) + comp.energy_j
            machine[comp.component] = machine.get(comp.component, 0.0) + comp.machine_energy_j

    def share(component: str) -> dict[str, float]:
        if machine.get(component, 0.0) <= 0:
            return {}
        return {"share": round(min(1.0, energy[component] / machine[component]), 4)}

    found: dict[tuple[str, str], dict[str, Any]] = {}
    for run in runs:
        hw = run.record.get("hardware") or {}
        cpu = hw.get("cpu") or {}
        if cpu.get("model_name"):
            item: dict[str, Any] = {"componentName": str(cpu["model_name"]),
                                    "componentType": "cpu"}  # fmt: skip
            sockets = cpu.get("sockets")
            item["nbComponent"] = sockets if isinstance(sockets, int) and sockets > 0 else 1
            vendor = _CPU_VENDORS.get(str(cpu.get("vendor")))
            if vendor:
                item["manufacturer"] = vendor
            found.setdefault(("cpu", item["componentName"]), {**item, **share("cpu")})
        gpus: dict[str, list[Mapping[str, Any]]] = {}
        for g in hw.get("gpus") or []:
            if isinstance(g, Mapping) and g.get("name"):
                gpus.setdefault(str(g["name"]), []).append(g)
        for name, same in gpus.items():
            item = {"componentName": name, "componentType": "gpu", "nbComponent": len(same)}
            mib = same[0].get("memory_mib")
            if isinstance(mib, (int, float)) and mib > 0:
                item["memorySize"] = round(mib / 1024, 2)
            item["manufacturer"] = str(same[0].get("vendor") or "nvidia")
            found.setdefault(("gpu", name), {**item, **share("gpu")})
        ram = hw.get("ram_gb")
        if isinstance(ram, (int, float)) and ram > 0:
            item = {"componentType": "ram", "nbComponent": 1, "memorySize": ram}
            found.setdefault(("ram", str(ram)), {**item, **share("dram")})
    return list(found.values())


def _quality(runs: Sequence[RunRecord]) -> str | None:
    energy = sum(r.energy_j for r in runs)
    band = sum(r.energy_band_j or 0.0 for r in runs)
    if energy <= 0 or not math.isfinite(band):
        return None
    for limit, name in QUALITY_BANDS:
        if band / energy <= limit:
            return name
    return None


def _environment(runs: Sequence[RunRecord]) -> dict[str, Any]:
    from wattwise.carbon import country_names

    locations = [r.record.get("location") or {} for r in runs]
    names = country_names()
    countries = _distinct([names.get(str(loc.get("country_iso2")), loc.get("country_iso2"))
                           for loc in locations])  # fmt: skip
    out: dict[str, Any] = {"country": "; ".join(map(str, countries)) if countries else "unknown"}
    places = _distinct([loc.get("display_name") for loc in locations])
    clouds = _distinct([f"{loc.get('cloud_provider')} {loc.get('cloud_region')}"
                        for loc in locations if loc.get("cloud_provider")])  # fmt: skip
    if clouds or places:
        out["location"] = "; ".join(map(str, clouds or places))
    weighted = [(r.energy_j, (r.record.get("intensity") or {}).get("g_per_kwh")) for r in runs]
    known = [(e, i) for e, i in weighted if isinstance(i, (int, float))]
    total = sum(e for e, _ in known)
    values = _distinct([i for _, i in known])
    if len(values) == 1:
        out["powerSourceCarbonIntensity"] = float(values[0])
    elif known and total > 0:
        out["powerSourceCarbonIntensity"] = round(sum(e * i for e, i in known) / total, 3)
    return out


def _merge(auto: dict[str, Any], given: Mapping[str, Any]) -> dict[str, Any]:
    """``given`` over ``auto``; objects merged key by key, infrastructure components by
    ``componentType`` (the user's details added to what wattwise found)."""
    out = dict(auto)
    for key, value in given.items():
        mine = out.get(key)
        if key == "components" and isinstance(mine, list) and isinstance(value, list):
            merged = [dict(c) for c in mine]
            for extra in value:
                if not isinstance(extra, Mapping):
                    continue
                same = [c for c in merged if c.get("componentType") == extra.get("componentType")]
                if len(same) == 1:
                    same[0].update(extra)
                else:
                    merged.append(dict(extra))
            out[key] = merged
        elif isinstance(mine, dict) and isinstance(value, Mapping):
            out[key] = _merge(mine, value)
        else:
            out[key] = value
    return out


def missing_fields(report: Mapping[str, Any]) -> list[str]:
    """The fields BoAmps requires that the report lacks (what only the user can give)."""
    missing = []
    task = report.get("task")
    if not isinstance(task, Mapping):
        missing.append("task (taskStage, taskFamily, algorithms, dataset)")
        task = {}
    else:
        for key in ("taskStage", "taskFamily"):
            if not task.get(key):
                missing.append(f"task.{key}")
        for key in ("algorithms", "dataset"):
            value = task.get(key)
            if not isinstance(value, list) or not value:
                missing.append(f"task.{key} (a list of at least one object)")
    for i, item in enumerate(task.get("dataset") or []):
        for key in ("dataUsage", "dataType"):
            if not isinstance(item, Mapping) or not item.get(key):
                missing.append(f"task.dataset[{i}].{key}")
    components = (report.get("infrastructure") or {}).get("components")
    if not isinstance(components, list) or not components:
        missing.append("infrastructure.components (no hardware was recorded)")
    publisher = (report.get("header") or {}).get("publisher")
    if isinstance(publisher, Mapping) and not publisher.get("confidentialityLevel"):
        missing.append("header.publisher.confidentialityLevel")
    return missing


def boamps_report(
    runs: Sequence[RunRecord], *, context: Mapping[str, Any] | None = None,
    now: float | None = None,
) -> dict[str, Any]:  # fmt: skip
    """One BoAmps report for the runs (see the module docstring).

    Args:
        runs: The counted runs (top-level runs; nested ones are inside their parents).
        context: What only the user knows, shaped like the report (``task``...).
        now: The report's time (default: now).

    Returns:
        The report, ready for ``json.dumps``.

    Raises:
        InvalidParameterError: No runs, or a context key BoAmps does not have.
    """
    if not runs:
        msg = "A BoAmps report needs at least one run; record one with wattwise run or track()."
        raise InvalidParameterError(msg)
    given = dict(context or {})
    check_context(given)
    ids = sorted(r.id for r in runs)
    report_id = str(uuid.UUID(hex=ids[0])) if len(ids) == 1 and len(ids[0]) == 32 else str(
        uuid.uuid5(uuid.NAMESPACE_URL, "wattwise:" + ",".join(ids)))  # fmt: skip
    header: dict[str, Any] = {
        "formatVersion": FORMAT_VERSION,
        "formatVersionSpecificationUri": SPECIFICATION_URI,
        "reportId": report_id,
        "reportDatetime": _when(now if now is not None else dt.datetime.now(dt.timezone.utc)
                                .timestamp()),
    }  # fmt: skip
    envs = [r.record.get("environment") or {} for r in runs]
    report: dict[str, Any] = {"header": header, "measures": [_measure(r) for r in runs]}
    oses = _distinct([e.get("os") for e in envs])
    if oses:
        report["system"] = {"os": ", ".join(map(str, oses))}
    pythons = _distinct([e.get("python") for e in envs])
    report["software"] = {"language": "python"}
    if pythons:
        report["software"]["version"] = ", ".join(map(str, pythons))
    providers = _distinct([(r.record.get("location") or {}).get("cloud_provider") for r in runs])
    infra: dict[str, Any] = {"infraType": "publicCloud" if providers else "onPremise"}
    if providers:
        infra["cloudProvider"] = ", ".join(map(str, providers))
    infra["components"] = _components(runs)
    report["infrastructure"] = infra
    report["environment"] = _environment(runs)
    quality = _quality(runs)
    if quality is not None:
        report["quality"] = quality
    report = _merge(report, given)
    still_running = any(r.status.value == "running" for r in runs)
    if "reportStatus" not in (given.get("header") or {}) and (
            missing_fields(report) or still_running):  # fmt: skip
        report["header"]["reportStatus"] = "draft"
    order = ["header", "task", "measures", "system", "software", "infrastructure",
             "environment", "quality"]  # fmt: skip
    return {key: report[key] for key in order if key in report}


def render_boamps(
    runs: Sequence[RunRecord], *, context: Mapping[str, Any] | None = None,
    now: float | None = None,
) -> str:  # fmt: skip
    """:func:`boamps_report` as indented JSON text."""
    return json.dumps(boamps_report(runs, context=context, now=now), indent=2,
                      ensure_ascii=False) + "\n"  # fmt: skip

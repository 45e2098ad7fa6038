"""A short, JSON-ready description of this machine, and the shipped uncertainty bands.

``describe_hardware()`` is what a run record stores under "hardware" and what
``wattwise doctor`` prints. It is cheap: it reads ``/proc/cpuinfo`` (cached), asks psutil
for the memory size and, when NVML works, asks it for the GPUs. No subprocess.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

from wattwise.data import read_csv
from wattwise.meters._cpuinfo import DEFAULT_CPUINFO, read_cpuinfo

_BANDS_FILE = "meters_uncertainty.csv"
_BYTES_PER_GIB = 2**30


def uncertainty_band(method: str, component: str) -> tuple[float | None, str]:
    """The relative uncertainty band for figures made by ``method`` for ``component``.

    Bands come from ``wattwise/data/meters_uncertainty.csv`` (method, component,
    band_fraction, source). An empty ``band_fraction`` means no band is known (hardware
    counters: the instrument error is not quantified).

    Args:
        method: ``counter``, ``sampled``, ``model`` or ``user``.
        component: ``cpu``, ``dram`` or ``gpu``.

    Returns:
        ``(band_fraction, source)``; ``(None, "...")`` when the file has no band for the pair.
    """
    for row in read_csv(_BANDS_FILE):
        if row["method"] == method and row["component"] == component:
            text = row["band_fraction"].strip()
            return (float(text) if text else None), row["source"]
    return None, f"No uncertainty band is recorded for {method} figures of {component}."


def describe_hardware(
    *,
    cpuinfo_path: Path | str = DEFAULT_CPUINFO,
    nvml: ModuleType | None = None,
    amdsmi: ModuleType | None = None,
    apple: ModuleType | None = None,
    provider: str | None = None,
    total_memory_bytes: int | None = None,
    probe_gpus: bool = True,
) -> dict[str, object]:
    """Describe the CPU, memory and GPUs of this machine as plain JSON-serialisable data.

    GPUs come from every registered meter that follows the ``GpuMeter`` protocol
    (``devices()``) and works here: NVML, amdsmi, Apple silicon, plug-ins.

    Args:
        cpuinfo_path: The cpuinfo file to read.
        nvml: An NVML module to use instead of ``pynvml`` (tests pass
            ``wattwise.testing.fake_nvml``).
        amdsmi: An amdsmi module instead of ``amdsmi`` (tests).
        apple: A ``zeus_apple_silicon``-like module (tests).
        provider: Cloud provider whose CCF table names the microarchitecture
            (``aws``, ``gcp``, ``azure``); None uses the AWS table.
        total_memory_bytes: Memory size to report instead of asking psutil.
        probe_gpus: Set False to skip the GPU meters entirely.

    Returns:
        ``{"cpu": {model_name, vendor, family, model, stepping, microarchitecture,
        match_rule, sockets, cores, threads, is_virtual}, "ram_gb": GiB (2**30 bytes) or
        None, "gpus": [{index, name, memory_mib, power_limit_w, driver}] (plus ``vendor``
        for GPUs other than NVIDIA's), "accelerator": "gpu" | "cpu"}``.
    """
    # Imported here: these modules import this one for uncertainty_band().
    from wattwise.meters._base import GpuMeter
    from wattwise.meters._cpu_model import match_cpu
    from wattwise.meters._registry import MeterContext, meter_entries

    info = read_cpuinfo(Path(cpuinfo_path))
    match = match_cpu(info, provider=provider)
    cores = info.cores_per_socket * info.sockets if info.cores_per_socket else None
    cpu: dict[str, object] = {
        "model_name": info.model_name,
        "vendor": info.vendor,
        "family": info.family,
        "model": info.model,
        "stepping": info.stepping,
        "microarchitecture": match.microarchitecture,
        "match_rule": match.rule,
        "sockets": info.sockets,
        "cores": cores,
        "threads": info.logical_cpus,
        "is_virtual": info.is_virtual,
    }

    ram_gb: float | None
    if total_memory_bytes is None:
        try:
            import psutil

            total_memory_bytes = int(psutil.virtual_memory().total)
        except Exception:  # psutil missing or broken: report unknown, never fail
            total_memory_bytes = None
    ram_gb = round(total_memory_bytes / _BYTES_PER_GIB, 2) if total_memory_bytes else None

    gpus: list[dict[str, object]] = []
    if probe_gpus:
        context = MeterContext(
            nvml=nvml, amdsmi=amdsmi, apple=apple, cpuinfo_path=Path(cpuinfo_path)
        )
        for entry in meter_entries():
            if entry.cls is None or "gpu" not in entry.covers:
                continue
            meter = entry.cls.from_context(context)
            try:
                if isinstance(meter, GpuMeter) and meter.probe().ok:
                    for dev in meter.devices():
                        row = {
                            k: dev.get(k)
                            for k in ("index", "name", "memory_mib", "power_limit_w", "driver")
                        }
                        if dev.get("vendor") not in (None, "nvidia"):
                            row["vendor"] = dev.get("vendor")
                        gpus.append(row)
            except Exception:  # a plug-in's failure must not stop the run record
                continue
            finally:
                meter.close()
    return {
        "cpu": cpu,
        "ram_gb": ram_gb,
        "gpus": gpus,
        "accelerator": "gpu" if gpus else "cpu",
    }

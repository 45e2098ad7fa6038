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
    provider: str | None = None,
    total_memory_bytes: int | None = None,
    probe_gpus: bool = True,
) -> dict[str, object]:
    """Describe the CPU, memory and GPUs of this machine as plain JSON-serialisable data.

    Args:
        cpuinfo_path: The cpuinfo file to read.
        nvml: An NVML module to use instead of ``pynvml`` (tests pass
            ``wattwise.testing.fake_nvml``).
        provider: Cloud provider whose CCF table names the microarchitecture
            (``aws``, ``gcp``, ``azure``); None uses the AWS table.
        total_memory_bytes: Memory size to report instead of asking psutil.
        probe_gpus: Set False to skip NVML entirely.

    Returns:
        ``{"cpu": {model_name, vendor, family, model, stepping, microarchitecture,
        match_rule, sockets, cores, threads, is_virtual}, "ram_gb": GiB (2**30 bytes) or
        None, "gpus": [{index, name, memory_mib, power_limit_w, driver}],
        "accelerator": "gpu" | "cpu"}``.
    """
    # Imported here: these modules import this one for uncertainty_band().
    from wattwise.meters._cpu_model import match_cpu
    from wattwise.meters._nvml import NvmlMeter

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
        meter = NvmlMeter(nvml=nvml)
        try:
            if meter.probe().ok:
                devices = meter.info().details.get("devices", [])
                if isinstance(devices, list):
                    for dev in devices:
                        if isinstance(dev, dict):
                            gpus.append(
                                {
                                    "index": dev.get("index"),
                                    "name": dev.get("name"),
                                    "memory_mib": dev.get("memory_total_mib"),
                                    "power_limit_w": dev.get("power_limit_w"),
                                    "driver": dev.get("driver_version"),
                                }
                            )
        finally:
            meter.close()
    return {
        "cpu": cpu,
        "ram_gb": ram_gb,
        "gpus": gpus,
        "accelerator": "gpu" if gpus else "cpu",
    }

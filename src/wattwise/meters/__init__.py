"""Meters: machine-wide cumulative energy per component (cpu, dram, gpu, npu), and how it is made.

Every meter answers ``probe()`` (can it work here, and if not exactly why) and ``read()``
(cumulative joules per domain key such as ``"cpu:0"``, ``"dram:0"``, ``"gpu:1"``). Methods,
best first: hardware **counter** (RAPL, NVML and amdsmi energy, Apple IOReport),
**sampled** power (NVML or amdsmi power), **model** (CPU model and busy time; memory
size), **user** constant. Meters live in a registry (built-ins plus the
``wattwise.meters`` entry point); ``select_meters()`` picks one meter per component;
``probe_all()`` and ``describe_hardware()`` feed ``wattwise doctor``. Attribution to a
process tree happens in :mod:`wattwise.tracking`.

Importing this package loads neither ``pynvml`` nor ``amdsmi`` nor ``zeus_apple_silicon``
nor ``psutil`` nor ``numpy``.
"""

from __future__ import annotations

from wattwise.meters._amd import AmdSmiMeter
from wattwise.meters._apple import AppleSiliconMeter
from wattwise.meters._base import (
    COMPONENT_ATTRIBUTION,
    COMPONENT_LABELS,
    COMPONENTS,
    Availability,
    BaseMeter,
    Component,
    GpuMeter,
    MeterInfo,
    Method,
    component_of,
)
from wattwise.meters._cpu_model import CpuMatch, CpuModelMeter, match_cpu
from wattwise.meters._cpuinfo import CpuInfo, read_cpuinfo
from wattwise.meters._dram_model import DramModelMeter
from wattwise.meters._hardware import describe_hardware, uncertainty_band
from wattwise.meters._nvml import NvmlMeter
from wattwise.meters._rapl import RaplMeter
from wattwise.meters._registry import (
    ENTRY_POINT_GROUP,
    RAPL_ROOT_ENV,
    MeterContext,
    MeterEntry,
    check_meter_class,
    meter_entries,
    register_meter,
    reload_plugins,
    unregister_meter,
)
from wattwise.meters._select import MeterSelection, describe_meters, probe_all, select_meters

__all__ = [
    "AmdSmiMeter",
    "AppleSiliconMeter",
    "Availability",
    "BaseMeter",
    "COMPONENTS",
    "COMPONENT_ATTRIBUTION",
    "COMPONENT_LABELS",
    "Component",
    "CpuInfo",
    "CpuMatch",
    "CpuModelMeter",
    "DramModelMeter",
    "ENTRY_POINT_GROUP",
    "GpuMeter",
    "MeterContext",
    "MeterEntry",
    "MeterInfo",
    "MeterSelection",
    "Method",
    "NvmlMeter",
    "RAPL_ROOT_ENV",
    "RaplMeter",
    "check_meter_class",
    "component_of",
    "describe_hardware",
    "describe_meters",
    "match_cpu",
    "meter_entries",
    "probe_all",
    "read_cpuinfo",
    "register_meter",
    "reload_plugins",
    "select_meters",
    "uncertainty_band",
    "unregister_meter",
]

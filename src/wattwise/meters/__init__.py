"""Meters: machine-wide cumulative energy per component (cpu, dram, gpu), and how it is made.

Every meter answers ``probe()`` (can it work here, and if not exactly why) and ``read()``
(cumulative joules per domain key such as ``"cpu:0"``, ``"dram:0"``, ``"gpu:1"``). Methods,
best first: hardware **counter** (RAPL, NVML energy), **sampled** power (NVML power),
**model** (CPU model and busy time; memory size), **user** constant. ``select_meters()``
picks one meter per component; ``probe_all()`` and ``describe_hardware()`` feed
``wattwise doctor``. Attribution to a process tree happens in :mod:`wattwise.tracking`.

Importing this package loads neither ``pynvml`` nor ``psutil`` nor ``numpy``.
"""

from __future__ import annotations

from wattwise.meters._base import Availability, BaseMeter, MeterInfo, component_of
from wattwise.meters._cpu_model import CpuMatch, CpuModelMeter, match_cpu
from wattwise.meters._cpuinfo import CpuInfo, read_cpuinfo
from wattwise.meters._dram_model import DramModelMeter
from wattwise.meters._hardware import describe_hardware, uncertainty_band
from wattwise.meters._nvml import NvmlMeter
from wattwise.meters._rapl import RaplMeter
from wattwise.meters._select import MeterSelection, probe_all, select_meters

__all__ = [
    "Availability",
    "BaseMeter",
    "CpuInfo",
    "CpuMatch",
    "CpuModelMeter",
    "DramModelMeter",
    "MeterInfo",
    "MeterSelection",
    "NvmlMeter",
    "RaplMeter",
    "component_of",
    "describe_hardware",
    "match_cpu",
    "probe_all",
    "read_cpuinfo",
    "select_meters",
    "uncertainty_band",
]

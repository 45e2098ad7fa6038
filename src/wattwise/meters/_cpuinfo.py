"""Parse ``/proc/cpuinfo`` once: vendor, model, family, topology, ISA flags.

Reads the file directly (no ``py-cpuinfo``, no subprocess): CodeCarbon spends about 1.3 s in
py-cpuinfo at start-up (``reference/trackers.md`` §0 item 7); this takes well under a
millisecond. The result is cached per path for the life of the process.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from pathlib import Path

DEFAULT_CPUINFO = Path("/proc/cpuinfo")


@dataclasses.dataclass(frozen=True)
class CpuInfo:
    """What ``/proc/cpuinfo`` says about the CPUs this kernel sees.

    In a virtual machine these describe the *virtual* CPUs: the model name is often
    generic ("AMD EPYC") and ``siblings``/``cpu cores`` describe the guest's topology,
    not the host chip's. ``is_virtual`` is True when the kernel reports the
    ``hypervisor`` flag.

    Attributes:
        vendor: ``vendor_id`` (``GenuineIntel``, ``AuthenticAMD``), ``ARM`` for Arm
            implementer 0x41, or "" when unknown.
        model_name: ``model name`` as written by the kernel, or "".
        family: ``cpu family`` (decimal), or None.
        model: ``model`` (decimal), or None.
        stepping: ``stepping``, or None.
        logical_cpus: Number of ``processor`` entries (online logical CPUs).
        sockets: Number of distinct ``physical id`` values (1 when absent).
        cores_per_socket: ``cpu cores``, or None.
        threads_per_core: ``siblings`` / ``cpu cores``, or None.
        siblings: ``siblings`` (logical CPUs per socket), or None.
        flags: ISA flags of the first CPU (x86 ``flags``, Arm ``Features``).
        is_virtual: True when the ``hypervisor`` flag is present.
        arm_implementer: Arm ``CPU implementer`` (0x41 = Arm Ltd), or None.
        arm_part: Arm ``CPU part`` (0xd0c = Neoverse N1, …), or None.
        path: The file that was read ("" when it could not be read).
    """

    vendor: str = ""
    model_name: str = ""
    family: int | None = None
    model: int | None = None
    stepping: int | None = None
    logical_cpus: int = 1
    sockets: int = 1
    cores_per_socket: int | None = None
    threads_per_core: int | None = None
    siblings: int | None = None
    flags: frozenset[str] = frozenset()
    is_virtual: bool = False
    arm_implementer: int | None = None
    arm_part: int | None = None
    path: str = ""


def _int(value: str | None, base: int = 10) -> int | None:
    if value is None:
        return None
    try:
        return int(value.strip(), base)
    except ValueError:
        return None


def parse_cpuinfo(text: str, *, path: str = "") -> CpuInfo:
    """Parse the text of a ``/proc/cpuinfo`` file.

    Args:
        text: The file's content.
        path: Where it came from, kept for the record.

    Returns:
        The parsed facts; fields the text does not carry keep their defaults.
    """
    blocks: list[dict[str, str]] = []
    current: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            if current:
                blocks.append(current)
                current = {}
            continue
        key, sep, value = line.partition(":")
        if not sep:
            continue
        current.setdefault(key.strip().lower(), value.strip())
    if current:
        blocks.append(current)
    processors = [b for b in blocks if "processor" in b]
    first = processors[0] if processors else (blocks[0] if blocks else {})
    # Fields printed once per file on some kernels (Arm prints "Hardware" at the end).
    merged: dict[str, str] = {}
    for block in blocks:
        for key, value in block.items():
            merged.setdefault(key, value)

    physical_ids = {b["physical id"] for b in processors if "physical id" in b}
    cores = _int(first.get("cpu cores"))
    siblings = _int(first.get("siblings"))
    threads_per_core = siblings // cores if cores and siblings and siblings >= cores else None
    flags_text = first.get("flags") or first.get("features") or ""
    flags = frozenset(flags_text.split())
    implementer = _int(merged.get("cpu implementer"), 16)
    part = _int(merged.get("cpu part"), 16)
    vendor = merged.get("vendor_id", "")
    if not vendor and implementer == 0x41:
        vendor = "ARM"
    return CpuInfo(
        vendor=vendor,
        model_name=" ".join(merged.get("model name", "").split()),
        family=_int(first.get("cpu family")),
        model=_int(first.get("model")),
        stepping=_int(first.get("stepping")),
        logical_cpus=len(processors) or (os.cpu_count() or 1),
        sockets=max(1, len(physical_ids)),
        cores_per_socket=cores,
        threads_per_core=threads_per_core,
        siblings=siblings,
        flags=flags,
        is_virtual="hypervisor" in flags,
        arm_implementer=implementer,
        arm_part=part,
        path=path,
    )


@functools.cache
def read_cpuinfo(path: Path = DEFAULT_CPUINFO) -> CpuInfo:
    """Read and parse a cpuinfo file, once per path per process.

    A missing or unreadable file (macOS, Windows, a locked-down container) gives a
    ``CpuInfo`` with empty fields and ``logical_cpus`` from ``os.cpu_count()``; this
    function never raises for that.

    Args:
        path: The file to read (``/proc/cpuinfo``).

    Returns:
        The parsed facts.
    """
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return CpuInfo(logical_cpus=os.cpu_count() or 1)
    return parse_cpuinfo(text, path=str(path))

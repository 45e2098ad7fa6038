"""Choose one meter per component: the best that works here, or exactly the ones asked for.

Preference per component (the first available wins; never two meters for one component):

* cpu: ``cpu-rapl`` (RAPL package counters) -> ``cpu-model`` (CCF/TDP model)
* dram: ``cpu-rapl``'s DRAM domain -> ``dram-model`` (W per GB)
* gpu: ``gpu-nvml`` when NVML sees a GPU; otherwise no GPU component

Asked-for meters that do not work raise, with what failed, why and how to fix it; meters
chosen by default degrade instead, and each step down is written as a sentence in
``MeterSelection.fallbacks`` for the caller to warn with and to store in the run record.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

from wattwise.exceptions import InvalidParameterError, MeterPermissionError, MeterUnavailableError
from wattwise.meters._base import Availability, BaseMeter
from wattwise.meters._cpu_model import CpuModelMeter
from wattwise.meters._cpuinfo import DEFAULT_CPUINFO
from wattwise.meters._dram_model import DramModelMeter
from wattwise.meters._nvml import NvmlMeter
from wattwise.meters._rapl import DEFAULT_POWERCAP_ROOT, RaplMeter

METER_IDS: tuple[str, ...] = ("cpu-rapl", "cpu-model", "dram-model", "gpu-nvml")
_COVERS: dict[str, tuple[str, ...]] = {
    "cpu-rapl": ("cpu",),  # and dram when the platform has the domain and no dram meter is named
    "cpu-model": ("cpu",),
    "dram-model": ("dram",),
    "gpu-nvml": ("gpu",),
}
_WAY_OUT: dict[str, str] = {
    "cpu-rapl": "pass meters=['cpu-model'] to estimate CPU energy",
    "cpu-model": "leave 'cpu-model' out of meters",
    "dram-model": "pass total_bytes to DramModelMeter or leave 'dram-model' out of meters",
    "gpu-nvml": "leave 'gpu-nvml' out of meters to run without GPU energy",
}


@dataclasses.dataclass
class MeterSelection:
    """The meters chosen for this machine.

    Attributes:
        meters: Probed, working meters; each component is covered by at most one.
        unavailable: Meter id -> why it could not be used (only meters that were tried).
        fallbacks: One sentence per component that got a lesser meter than the best one,
            e.g. "cpu: no RAPL counters here (...); estimated with the cpu-model meter."
    """

    meters: list[BaseMeter]
    unavailable: dict[str, Availability] = dataclasses.field(default_factory=dict)
    fallbacks: list[str] = dataclasses.field(default_factory=list)

    def close(self) -> None:
        """Close every selected meter (NVML shutdown)."""
        for meter in self.meters:
            meter.close()


def _clause(reason: str) -> str:
    """A reason sentence as a clause: no final period, lower-case first word."""
    text = reason.strip().rstrip(".")
    if len(text) > 1 and text[0].isupper() and not text[1].isupper():
        text = text[0].lower() + text[1:]
    return text


def _normalise_names(names: Sequence[str] | str) -> list[str]:
    if isinstance(names, str):
        names = [n for n in (part.strip() for part in names.split(",")) if n]
    if not all(isinstance(n, str) for n in names):
        msg = (
            "The 'names' parameter of select_meters must be a sequence of meter ids or None. "
            f"Got {names!r} instead."
        )
        raise InvalidParameterError(msg)
    valid = ", ".join(repr(m) for m in sorted(METER_IDS))
    out: list[str] = []
    for name in names:
        if name not in METER_IDS:
            msg = f"Unknown meter {name!r}. Valid meter ids are {valid}."
            raise InvalidParameterError(msg)
        if name not in out:
            out.append(name)
    for i, first in enumerate(out):
        for second in out[i + 1 :]:
            shared = set(_COVERS[first]) & set(_COVERS[second])
            if shared:
                comp = shared.pop()
                msg = (
                    f"Meters {first!r} and {second!r} both measure {comp} energy, and a "
                    "component is measured by one meter only. Pass just one of them."
                )
                raise InvalidParameterError(msg)
    return out


def _build(
    name: str,
    *,
    rapl_root: Path,
    nvml: ModuleType | None,
    cpuinfo_path: Path,
    provider: str | None,
    include_dram: bool = True,
) -> BaseMeter:
    if name == "cpu-rapl":
        return RaplMeter(rapl_root, include_dram=include_dram)
    if name == "cpu-model":
        return CpuModelMeter(cpuinfo_path, provider)
    if name == "dram-model":
        return DramModelMeter()
    return NvmlMeter(nvml=nvml)


def _explicit_error(meter: BaseMeter, availability: Availability) -> Exception:
    if isinstance(meter, RaplMeter) and meter.unreadable_file is not None:
        msg = (
            f"Cannot read RAPL counters: permission denied on {meter.unreadable_file}. "
            "Run 'wattwise doctor' for the fix, or pass meters=['cpu-model'] to estimate "
            "CPU energy."
        )
        return MeterPermissionError(msg)
    hint = f" {availability.hint}" if availability.hint else ""
    msg = (
        f"Cannot use the {meter.name} meter: {_clause(availability.reason)}.{hint} Run "
        f"'wattwise doctor' for details, or {_WAY_OUT[meter.name]}."
    )
    if isinstance(meter, NvmlMeter) and meter.is_permission_denied:
        return MeterPermissionError(msg)
    return MeterUnavailableError(msg)


def select_meters(
    names: Sequence[str] | None = None,
    *,
    rapl_root: Path | str = DEFAULT_POWERCAP_ROOT,
    nvml: ModuleType | None = None,
    cpuinfo_path: Path | str = DEFAULT_CPUINFO,
    provider: str | None = None,
) -> MeterSelection:
    """Pick the meters to use, probed and ready to ``read()``.

    Args:
        names: Meter ids to use exactly (``["cpu-rapl", "gpu-nvml"]``), or None for the
            best available per component. A comma-separated string is accepted too.
        rapl_root: The powercap directory.
        nvml: An NVML module to use instead of ``pynvml`` (tests).
        cpuinfo_path: The cpuinfo file.
        provider: Cloud provider whose CCF table the cpu-model meter uses.

    Returns:
        The selection: meters, why others were unavailable, and fallback sentences.

    Raises:
        InvalidParameterError: An unknown id, or two meters for one component.
        MeterPermissionError: A named meter exists but may not be read.
        MeterUnavailableError: A named meter does not work here.
    """
    root, cpuinfo = Path(rapl_root), Path(cpuinfo_path)
    if names is not None:
        return _select_named(
            _normalise_names(names),
            rapl_root=root,
            nvml=nvml,
            cpuinfo_path=cpuinfo,
            provider=provider,
        )
    return _select_default(rapl_root=root, nvml=nvml, cpuinfo_path=cpuinfo, provider=provider)


def _select_named(
    names: list[str],
    *,
    rapl_root: Path,
    nvml: ModuleType | None,
    cpuinfo_path: Path,
    provider: str | None,
) -> MeterSelection:
    selection = MeterSelection(meters=[])
    include_dram = "dram-model" not in names
    for name in names:
        meter = _build(
            name,
            rapl_root=rapl_root,
            nvml=nvml,
            cpuinfo_path=cpuinfo_path,
            provider=provider,
            include_dram=include_dram,
        )
        availability = meter.probe()
        if not availability.ok:
            meter.close()
            selection.close()
            raise _explicit_error(meter, availability)
        selection.meters.append(meter)
    return selection


def _select_default(
    *,
    rapl_root: Path,
    nvml: ModuleType | None,
    cpuinfo_path: Path,
    provider: str | None,
) -> MeterSelection:
    selection = MeterSelection(meters=[])
    rapl = RaplMeter(rapl_root)
    rapl_state = rapl.probe()
    has_rapl_dram = False
    if rapl_state.ok:
        selection.meters.append(rapl)
        has_rapl_dram = "dram" in rapl.components()
    else:
        selection.unavailable[rapl.name] = rapl_state
        cpu_model = CpuModelMeter(cpuinfo_path, provider)
        cpu_state = cpu_model.probe()
        if cpu_state.ok:
            selection.meters.append(cpu_model)
            selection.fallbacks.append(
                f"cpu: no RAPL counters here ({_clause(rapl_state.reason)}); estimated with "
                f"the cpu-model meter (rule {cpu_model.match.rule!r})."
            )
        else:
            selection.unavailable[cpu_model.name] = cpu_state
            selection.fallbacks.append(
                f"cpu: not measured: no RAPL counters ({_clause(rapl_state.reason)}) and no "
                f"CPU model estimate ({_clause(cpu_state.reason)})."
            )

    if not has_rapl_dram:
        dram = DramModelMeter()
        dram_state = dram.probe()
        why = (
            "the RAPL counters here have no DRAM domain"
            if rapl_state.ok
            else f"no RAPL DRAM counter here ({_clause(rapl_state.reason)})"
        )
        if dram_state.ok:
            selection.meters.append(dram)
            selection.fallbacks.append(f"dram: {why}; estimated with the dram-model meter.")
        else:
            selection.unavailable[dram.name] = dram_state
            selection.fallbacks.append(
                f"dram: not measured: {why}, and no memory size ({_clause(dram_state.reason)})."
            )

    gpu = NvmlMeter(nvml=nvml)
    gpu_state = gpu.probe()
    if gpu_state.ok:
        selection.meters.append(gpu)
    else:
        gpu.close()
        selection.unavailable[gpu.name] = gpu_state
    return selection


def probe_all(
    *,
    rapl_root: Path | str = DEFAULT_POWERCAP_ROOT,
    nvml: ModuleType | None = None,
    cpuinfo_path: Path | str = DEFAULT_CPUINFO,
    provider: str | None = None,
) -> list[tuple[str, Availability]]:
    """Probe every meter, in preference order, for ``wattwise doctor``.

    Args:
        rapl_root: The powercap directory.
        nvml: An NVML module to use instead of ``pynvml`` (tests).
        cpuinfo_path: The cpuinfo file.
        provider: Cloud provider whose CCF table the cpu-model meter uses.

    Returns:
        ``[(meter id, Availability), ...]`` for cpu-rapl, cpu-model, dram-model, gpu-nvml.
    """
    out: list[tuple[str, Availability]] = []
    for name in METER_IDS:
        meter = _build(
            name,
            rapl_root=Path(rapl_root),
            nvml=nvml,
            cpuinfo_path=Path(cpuinfo_path),
            provider=provider,
        )
        try:
            out.append((name, meter.probe()))
        finally:
            meter.close()
    return out

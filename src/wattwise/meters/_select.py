"""Choose one meter per component: the best that works here, or exactly the ones asked for.

Meters come from the registry (:mod:`wattwise.meters._registry`). For each component in
order (cpu, dram, gpu, npu), the meters that cover it are tried by ``preference`` (lower
first, built-ins: ``soc-apple`` 10, ``cpu-rapl``/``gpu-nvml``/``gpu-amdsmi`` 20,
``cpu-model``/``dram-model`` 80); the first that works wins, and a component is never
measured by two meters. A meter that covers several components (RAPL's DRAM domain, a
system-on-chip) takes all of them that are still free.

Asked-for meters that do not work raise, with what failed, why and how to fix it; meters
chosen by default degrade instead, and each step down is written as a sentence in
``MeterSelection.fallbacks`` for the caller to warn with and to store in the run record.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from pathlib import Path
from types import ModuleType

from wattwise.exceptions import InvalidParameterError
from wattwise.meters._base import COMPONENTS, Availability, BaseMeter
from wattwise.meters._cpuinfo import DEFAULT_CPUINFO
from wattwise.meters._registry import (
    MeterContext,
    broken_entries,
    meter_class,
    meter_entries,
    meter_ids,
    rapl_root_from_env,
)

#: Components every machine has: when none of their meters works, a sentence says so.
_EXPECTED = ("cpu", "dram")


def __getattr__(name: str) -> object:
    if name == "METER_IDS":  # kept for callers of the old constant
        return tuple(meter_ids())
    raise AttributeError(name)


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


def make_context(
    *,
    rapl_root: Path | str | None = None,
    nvml: ModuleType | None = None,
    amdsmi: ModuleType | None = None,
    apple: ModuleType | None = None,
    cpuinfo_path: Path | str = DEFAULT_CPUINFO,
    provider: str | None = None,
) -> MeterContext:
    """A :class:`MeterContext`; ``rapl_root`` None reads ``$WATTWISE_RAPL_ROOT``."""
    return MeterContext(
        rapl_root=Path(rapl_root) if rapl_root is not None else rapl_root_from_env(),
        nvml=nvml,
        amdsmi=amdsmi,
        apple=apple,
        cpuinfo_path=Path(cpuinfo_path),
        provider=provider,
    )


def _normalise_names(names: Sequence[str] | str) -> list[str]:
    if isinstance(names, str):
        names = [n for n in (part.strip() for part in names.split(",")) if n]
    if not all(isinstance(n, str) for n in names):
        msg = (
            "The 'names' parameter of select_meters must be a sequence of meter ids or None. "
            f"Got {names!r} instead."
        )
        raise InvalidParameterError(msg)
    out: list[str] = []
    for name in names:
        meter_class(name)  # raises for an unknown id, listing the valid ones
        if name not in out:
            out.append(name)
    _owners(out)  # raises when two named meters must both measure one component
    return out


def _owners(names: list[str]) -> dict[str, str]:
    """Component -> the named meter that measures it.

    A meter keeps every component it cannot leave out; a component that every holder may
    leave out goes to the first meter named.

    Raises:
        InvalidParameterError: Two named meters cannot leave the same component out.
    """
    classes = {name: meter_class(name) for name in names}
    owners: dict[str, str] = {}
    for comp in dict.fromkeys(c for n in names for c in classes[n].covers):
        holders = [n for n in names if comp in classes[n].covers]
        firm = [n for n in holders if comp not in classes[n].optional()]
        if len(firm) > 1:
            msg = (
                f"Meters {firm[0]!r} and {firm[1]!r} both measure {comp} energy, and a "
                "component is measured by one meter only. Pass just one of them."
            )
            raise InvalidParameterError(msg)
        owners[comp] = firm[0] if firm else holders[0]
    return owners


def select_meters(
    names: Sequence[str] | None = None,
    *,
    rapl_root: Path | str | None = None,
    nvml: ModuleType | None = None,
    amdsmi: ModuleType | None = None,
    apple: ModuleType | None = None,
    cpuinfo_path: Path | str = DEFAULT_CPUINFO,
    provider: str | None = None,
    components: Iterable[str] | None = None,
    exclude: Iterable[str] = (),
) -> MeterSelection:
    """Pick the meters to use, probed and ready to ``read()``.

    Args:
        names: Meter ids to use exactly (``["cpu-rapl", "gpu-nvml"]``), or None for the
            best available per component. A comma-separated string is accepted too.
        components: With ``names`` None: choose meters for these components only, and only
            meters that can leave every other component out (a run replaces a meter that
            stopped working mid-run for the components it measured).
        exclude: With ``names`` None: meter ids not to use (the meter that stopped).
        rapl_root: The powercap directory; None: ``$WATTWISE_RAPL_ROOT`` or
            ``/sys/class/powercap``.
        nvml: An NVML module to use instead of ``pynvml`` (tests).
        amdsmi: An amdsmi module to use instead of ``amdsmi`` (tests).
        apple: A ``zeus_apple_silicon``-like module (tests).
        cpuinfo_path: The cpuinfo file.
        provider: Cloud provider whose CCF table the cpu-model meter uses.

    Returns:
        The selection: meters, why others were unavailable, and fallback sentences.

    Raises:
        InvalidParameterError: An unknown id, or two meters for one component.
        MeterPermissionError: A named meter exists but may not be read.
        MeterUnavailableError: A named meter does not work here.
    """
    context = make_context(
        rapl_root=rapl_root,
        nvml=nvml,
        amdsmi=amdsmi,
        apple=apple,
        cpuinfo_path=cpuinfo_path,
        provider=provider,
    )
    if names is not None:
        return _select_named(_normalise_names(names), context)
    if components is None:
        return _select_default(context, frozenset(exclude))
    wanted = set(components)
    unknown = sorted(wanted - set(COMPONENTS))
    if unknown:
        msg = (
            f"The 'components' parameter of select_meters must name components among "
            f"{', '.join(COMPONENTS)}. Got {unknown[0]!r} instead."
        )
        raise InvalidParameterError(msg)
    others = frozenset(c for c in COMPONENTS if c not in wanted)
    return _select_default(context, frozenset(exclude), already=others)


def _select_named(names: list[str], context: MeterContext) -> MeterSelection:
    selection = MeterSelection(meters=[])
    owners = _owners(names)
    for name in names:
        others = {comp for comp, owner in owners.items() if owner != name}
        meter = meter_class(name).from_context(context.without(others))
        availability = meter.probe()
        if not availability.ok:
            meter.close()
            selection.close()
            raise meter.unavailable_error(availability)
        twice = set(meter.components()) & others
        if twice:
            meter.close()
            selection.close()
            comp = sorted(twice)[0]
            owner = owners[comp]
            msg = (
                f"Meters {name!r} and {owner!r} both measure {comp} energy, and {name!r} "
                "cannot leave it out. Pass just one of them."
            )
            raise InvalidParameterError(msg)
        selection.meters.append(meter)
    return selection


def _select_default(
    context: MeterContext, exclude: frozenset[str] = frozenset(),
    already: frozenset[str] = frozenset(),
) -> MeterSelection:  # fmt: skip
    """The best working meter per component not ``already`` measured, none of ``exclude``."""
    selection = MeterSelection(meters=[])
    entries = sorted(
        (e for e in meter_entries()
         if e.cls is not None and e.name not in exclude and e.cls.runs_on()),
        key=lambda e: e.preference,
    )  # fmt: skip
    covered: set[str] = set(already)  # component names
    tried: dict[str, tuple[BaseMeter, Availability]] = {}
    for comp in COMPONENTS:  # registered meters cover only these (check_meter_class)
        if comp in covered:
            continue
        failures: list[str] = []
        chosen: BaseMeter | None = None
        for entry in entries:
            if comp not in entry.covers or entry.cls is None:
                continue
            if entry.name in tried:
                meter, state = tried[entry.name]
                chosen_elsewhere = state.ok and meter in selection.meters
                if not state.ok or (chosen_elsewhere and comp not in meter.components()):
                    failures.append(meter.absence(comp, state))
                continue
            meter = entry.cls.from_context(context.without(covered))
            state = meter.probe()
            tried[entry.name] = (meter, state)
            if not state.ok:
                meter.close()
                selection.unavailable[entry.name] = state
                failures.append(meter.absence(comp, state))
                continue
            new = set(meter.components()) - covered
            if set(meter.components()) & covered or not new:
                meter.close()
                taken = ", ".join(sorted(set(meter.components()) & covered)) or comp
                state = Availability(
                    False,
                    f"{taken} is already measured by another meter, and the {entry.name} "
                    "meter cannot leave it out.",
                )
                tried[entry.name] = (meter, state)
                selection.unavailable[entry.name] = state
                continue
            selection.meters.append(meter)
            covered |= new
            if comp in new:
                chosen = meter
                break
            failures.append(meter.absence(comp, state))
        if chosen is not None and failures and chosen.info().method != "counter":
            verb = "estimated" if chosen.info().method == "model" else "measured"
            selection.fallbacks.append(
                f"{comp}: {'; '.join(failures)}; {verb} with the {chosen.name} meter"
                f"{chosen.selection_note()}."
            )
        elif chosen is None and comp in _EXPECTED and failures:
            selection.fallbacks.append(f"{comp}: not measured: {' and '.join(failures)}.")
    return selection


def probe_all(
    *,
    rapl_root: Path | str | None = None,
    nvml: ModuleType | None = None,
    amdsmi: ModuleType | None = None,
    apple: ModuleType | None = None,
    cpuinfo_path: Path | str = DEFAULT_CPUINFO,
    provider: str | None = None,
) -> list[tuple[str, Availability]]:
    """Probe every registered meter, for ``wattwise doctor``.

    Args:
        rapl_root: The powercap directory; None: ``$WATTWISE_RAPL_ROOT`` or the default.
        nvml: An NVML module to use instead of ``pynvml`` (tests).
        amdsmi: An amdsmi module to use instead of ``amdsmi`` (tests).
        apple: A ``zeus_apple_silicon``-like module (tests).
        cpuinfo_path: The cpuinfo file.
        provider: Cloud provider whose CCF table the cpu-model meter uses.

    Returns:
        ``[(meter id, Availability), ...]``: built-ins in registry order (cpu-rapl,
        cpu-model, dram-model, gpu-nvml, gpu-amdsmi, soc-apple), then plug-ins, then
        plug-ins that could not be loaded.
    """
    out: list[tuple[str, Availability]] = []
    for described in describe_meters(
        rapl_root=rapl_root, nvml=nvml, amdsmi=amdsmi, apple=apple,
        cpuinfo_path=cpuinfo_path, provider=provider,
    ):  # fmt: skip
        state = described["availability"]
        assert isinstance(state, Availability)
        out.append((str(described["meter"]), state))
    return out


def describe_meters(
    *,
    rapl_root: Path | str | None = None,
    nvml: ModuleType | None = None,
    amdsmi: ModuleType | None = None,
    apple: ModuleType | None = None,
    cpuinfo_path: Path | str = DEFAULT_CPUINFO,
    provider: str | None = None,
) -> list[dict[str, object]]:
    """Every registered meter with its ``describe()`` data, for doctor.

    Returns:
        One dict per meter: ``meter``, ``origin``, ``covers``, ``method``, ``ok``,
        ``reason``, ``hint`` (and ``components`` when it works), plus ``availability``
        (the :class:`Availability` object).
    """
    context = make_context(
        rapl_root=rapl_root, nvml=nvml, amdsmi=amdsmi, apple=apple,
        cpuinfo_path=cpuinfo_path, provider=provider,
    )  # fmt: skip
    out: list[dict[str, object]] = []
    for entry in meter_entries():
        if entry.cls is None:
            continue
        meter = entry.cls.from_context(context)
        try:
            described = meter.describe()
        except Exception as err:  # describe() of a plug-in must not break doctor
            described = {"meter": entry.name, "ok": False, "reason": f"{err!r}", "hint": ""}
        finally:
            meter.close()
        described["origin"] = entry.origin
        described["availability"] = Availability(
            bool(described["ok"]), str(described["reason"]), str(described.get("hint", ""))
        )
        out.append(described)
    for name, state in broken_entries():
        out.append(
            {
                "meter": name,
                "origin": "plug-in",
                "covers": [],
                "method": "",
                "ok": False,
                "reason": state.reason,
                "hint": state.hint,
                "availability": state,
            }
        )
    return out

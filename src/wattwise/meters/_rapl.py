"""CPU package and DRAM energy from the Linux powercap RAPL counters.

Layout read (``/sys/class/powercap`` flattens every zone into one directory of links; the
same zones nest under ``/sys/devices/virtual/powercap/<control type>/``, and both layouts
are accepted)::

    intel-rapl:0/            name = package-0      -> "cpu:0"
    intel-rapl:0/intel-rapl:0:0   name = core      (inside the package: ignored)
    intel-rapl:0/intel-rapl:0:1   name = uncore    (inside the package: ignored)
    intel-rapl:0/intel-rapl:0:2   name = dram      -> "dram:0"
    intel-rapl:1/            name = psys           (platform domain, overlaps: ignored)
    intel-rapl-mmio:0/       name = package-0      (same package through MMIO: mirror)

AMD: the kernel's ``intel_rapl`` driver also drives the RAPL MSRs of AMD family 17h, 19h
and 1Ah ("powercap: Add AMD Fam17h RAPL support", 2020; "powercap/intel_rapl: Add support
for AMD family 1Ah", 2024) and registers them under the same ``intel-rapl`` control type;
there is no separate AMD prefix. AMD parts expose a package domain (and a core subzone) but
no DRAM domain.

Never counting a joule twice (the mirror rules):

1. By zone name. The same package can be exposed by several control types
   (``intel-rapl`` = MSR, ``intel-rapl-tpmi`` on Granite Rapids and later,
   ``intel-rapl-mmio`` on client parts with the processor_thermal device). Zones are
   taken in that order of preference, and a zone whose name (``package-0``) was already
   taken from a preferred control type is dropped with its subzones.
2. By value. Multi-die CPUs can expose one package domain per die that all mirror the
   same socket counter (CodeCarbon issue #1274). At the first read, a zone whose counter
   equals an already kept zone of the same component, within a relative 1e-6 or an
   absolute 1 J (the tolerances of CodeCarbon's ``codecarbon/core/rapl.py``), is dropped
   as a mirror. Zero counters are never treated as mirrors.

Per-die zones that are not mirrors (``package-0-die-1``) are summed into their package key.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

from wattwise.exceptions import MeterError, MeterPermissionError, MeterUnavailableError
from wattwise.meters._base import (
    Availability,
    BaseMeter,
    Component,
    MeterInfo,
    Method,
    clause,
)
from wattwise.meters._hardware import uncertainty_band
from wattwise.meters._registry import DEFAULT_POWERCAP_ROOT, RAPL_ROOT_ENV, rapl_root_from_env

CONTROL_TYPES: tuple[str, ...] = ("intel-rapl", "intel-rapl-tpmi", "intel-rapl-mmio")
#: Where the fixes are explained at length. Messages say the fix inline first: an installed
#: wattwise has no docs/ folder, and mkdocs.yml declares no site_url to link to.
PERMISSIONS_DOC = "the documentation's how-to 'RAPL permissions'"
#: A udev rule that lets the ``powercap`` group read the counters after every boot (the
#: how-to's rule, on one line for a message).
UDEV_RULE = (
    'SUBSYSTEM=="powercap", KERNEL=="intel-rapl*", '
    'RUN+="/usr/bin/chgrp powercap /sys%p/energy_uj", '
    'RUN+="/usr/bin/chmod g+r /sys%p/energy_uj"'
)
#: The way out, in the Python API's spelling; the CLI prints it as ``--meters cpu-model``
#: (:func:`wattwise.cli._format.cli_spelling`).
_CPU_MODEL_WAY_OUT = "pass meters=['cpu-model'] to estimate CPU energy"

# CodeCarbon codecarbon/core/rapl.py: MIRRORED_COUNTER_TOLERANCE (relative) and
# SEQUENTIAL_READ_TOLERANCE (1 J, absolute) for telling mirrored counters apart.
_MIRROR_REL_TOLERANCE = 1e-6
_MIRROR_ABS_TOLERANCE_UJ = 1_000_000
_PACKAGE_NAME = re.compile(r"^package-(\d+)(?:-die-(\d+))?$")

Reader = Callable[[Path], str]


def _read_sysfs(path: Path) -> str:
    with open(path, encoding="ascii") as handle:
        return handle.read()


@dataclasses.dataclass
class _Zone:
    zone_id: str  # "intel-rapl:0", "intel-rapl:0:2"
    path: Path
    name: str  # "package-0", "dram"
    key: str  # "cpu:0", "dram:0"
    max_range_uj: int | None = None
    last_raw_uj: int | None = None
    total_uj: int = 0

    @property
    def energy_file(self) -> str:
        return f"{self.zone_id}/energy_uj"


class RaplMeter(BaseMeter):
    """Machine-wide CPU package (and DRAM) energy from RAPL counters in powercap sysfs.

    Args:
        root: The powercap directory (``/sys/class/powercap``); tests pass a fake tree.
        include_dram: Also report DRAM domains (``dram:N``) when the platform has them.
        read_file: Reads one sysfs file as text. Injectable so tests can simulate
            ``PermissionError`` even when they run as root (root ignores file modes).

    Example:
        >>> meter = RaplMeter()
        >>> if meter.probe().ok:
        ...     before = meter.read()
    """

    name: ClassVar[str] = "cpu-rapl"
    method: ClassVar[Method] = "counter"
    covers: ClassVar[tuple[Component, ...]] = ("cpu", "dram")
    preference: ClassVar[int] = 20
    way_out: ClassVar[str] = _CPU_MODEL_WAY_OUT
    platforms: ClassVar[tuple[str, ...]] = ("linux",)

    def __init__(
        self,
        root: Path | str | None = None,
        *,
        include_dram: bool = True,
        read_file: Reader | None = None,
    ) -> None:
        self._from_env = root is None and rapl_root_from_env() != DEFAULT_POWERCAP_ROOT
        self._root = Path(root) if root is not None else rapl_root_from_env()
        self._include_dram = include_dram
        self._read = read_file or _read_sysfs
        self._zones: list[_Zone] = []
        self._ignored: list[str] = []
        self._availability: Availability | None = None
        self._unreadable: str | None = None
        self._mirrors_checked = False
        self._started = False

    @classmethod
    def from_context(cls, context: Any) -> RaplMeter:
        """The meter on ``context.rapl_root``, without DRAM when another meter has it."""
        meter = cls(context.rapl_root, include_dram="dram" not in context.exclude)
        meter._from_env = context.rapl_root == rapl_root_from_env() != DEFAULT_POWERCAP_ROOT
        return meter

    @property
    def permission_denied(self) -> bool:
        """True when a counter exists but may not be read (Linux 5.10+ made them root-only)."""
        return self._unreadable is not None

    def absence(self, component: str, availability: Availability) -> str:
        """Why RAPL gives no figure for ``component`` here, as a clause."""
        if component == "dram":
            if availability.ok:
                return "the RAPL counters here have no DRAM domain"
            return f"no RAPL DRAM counter here ({clause(availability.reason)})"
        return f"no RAPL counters here ({clause(availability.reason)})"

    def unavailable_error(self, availability: Availability) -> Exception:
        """Permission denied gets its own error with the fix; the rest the generic one."""
        if self._unreadable is not None:
            msg = (
                f"Cannot read RAPL counters: permission denied on {self._unreadable}. "
                f"Run 'wattwise doctor' for the fix, or {_CPU_MODEL_WAY_OUT}."
            )
            return MeterPermissionError(msg)
        return super().unavailable_error(availability)

    # -- discovery ---------------------------------------------------------------------

    @property
    def root(self) -> Path:
        """The powercap directory this meter reads."""
        return self._root

    @property
    def unreadable_file(self) -> str | None:
        """``"intel-rapl:0/energy_uj"`` when probe() hit a permission error, else None."""
        return self._unreadable

    def _read_name(self, path: Path) -> str | None:
        try:
            return self._read(path / "name").strip()
        except OSError:
            return None

    def _read_int(self, path: Path) -> int | None:
        try:
            return int(self._read(path).strip())
        except (OSError, ValueError):
            return None

    def _top_level_zones(self) -> list[tuple[str, str, Path]]:
        """``(control_type, zone_id, path)`` of every top-level zone, in preference order."""
        found: list[tuple[str, str, Path]] = []
        seen: set[str] = set()
        for control in CONTROL_TYPES:
            for directory in (self._root, self._root / control):
                if not directory.is_dir():
                    continue
                for path in sorted(directory.glob(f"{control}:*")):
                    zone_id = path.name
                    suffix = zone_id[len(control) + 1 :]
                    if not suffix.isdigit() or zone_id in seen or not path.is_dir():
                        continue
                    seen.add(zone_id)
                    found.append((control, zone_id, path))
        return found

    def _subzones(self, zone_id: str, path: Path) -> list[tuple[str, Path]]:
        found: dict[str, Path] = {}
        for directory in (path, self._root):
            for sub in sorted(directory.glob(f"{zone_id}:*")):
                suffix = sub.name[len(zone_id) + 1 :]
                if suffix.isdigit() and sub.is_dir():
                    found.setdefault(sub.name, sub)
        return sorted(found.items())

    def _discover(self) -> list[_Zone]:
        zones: list[_Zone] = []
        taken_names: dict[str, str] = {}
        self._ignored = []
        for _control, zone_id, path in self._top_level_zones():
            name = self._read_name(path)
            if name is None:
                self._ignored.append(f"{zone_id}: no readable 'name' file")
                continue
            match = _PACKAGE_NAME.match(name)
            if match is None:
                self._ignored.append(
                    f"{zone_id} ({name}): not a package domain (psys overlaps the packages)"
                )
                continue
            if name in taken_names:
                self._ignored.append(
                    f"{zone_id} ({name}): mirrors {taken_names[name]} (same zone name)"
                )
                continue
            taken_names[name] = zone_id
            package = match.group(1)
            zones.append(_Zone(zone_id, path, name, f"cpu:{package}"))
            for sub_id, sub_path in self._subzones(zone_id, path):
                sub_name = self._read_name(sub_path)
                if sub_name == "dram" and self._include_dram:
                    zones.append(_Zone(sub_id, sub_path, sub_name, f"dram:{package}"))
                else:
                    why = "DRAM not requested" if sub_name == "dram" else "inside the package"
                    self._ignored.append(f"{sub_id} ({sub_name}): {why}")
        for zone in zones:
            max_range = self._read_int(zone.path / "max_energy_range_uj")
            zone.max_range_uj = max_range if max_range and max_range > 0 else None
        return zones

    # -- contract ------------------------------------------------------------------------

    def _probe(self) -> Availability:
        """Find the RAPL zones and check that their counters can be read."""
        self._unreadable = None
        self._zones = []
        self._mirrors_checked = False
        if not self._root.is_dir() and self._from_env:
            return Availability(
                False,
                f"{RAPL_ROOT_ENV}={self._root} is not a directory.",
                f"Point {RAPL_ROOT_ENV} at the host's powercap tree as mounted here (for "
                "example run the container with '-v /sys/devices/virtual/powercap:"
                f"/host/powercap:ro' and set {RAPL_ROOT_ENV}=/host/powercap), or unset it; "
                f"more in {PERMISSIONS_DOC}.",
            )
        if not self._root.is_dir():
            return Availability(
                False,
                f"no powercap RAPL interface at {self._root} (common in VMs and containers).",
                "On bare-metal Linux load the driver with 'sudo modprobe intel_rapl_msr'; in "
                "a container bind-mount the host's /sys/devices/virtual/powercap read-only "
                f"and set {RAPL_ROOT_ENV} to that path (more in {PERMISSIONS_DOC}). In a VM the "
                "cpu-model meter estimates CPU energy instead.",
            )
        zones = self._discover()
        if not any(z.key.startswith("cpu:") for z in zones):
            return Availability(
                False,
                f"No RAPL package zone under {self._root} (the directory exists but holds no "
                "intel-rapl package domain).",
                "Load the driver with 'sudo modprobe intel_rapl_msr'. Container runtimes mask "
                "/sys/devices/virtual/powercap: bind-mount it read-only elsewhere and set "
                f"{RAPL_ROOT_ENV} to that path (more in {PERMISSIONS_DOC}).",
            )
        readable: list[_Zone] = []
        for zone in zones:
            try:
                int(self._read(zone.path / "energy_uj").strip())
            except PermissionError:
                self._unreadable = zone.energy_file
                return Availability(
                    False,
                    f"permission denied on {zone.energy_file}; since Linux 5.10 the RAPL "
                    "energy counters are readable by root only.",
                    "Grant read access with 'sudo chmod o+r "
                    f"{DEFAULT_POWERCAP_ROOT}/intel-rapl:*/energy_uj' (until reboot) or, for "
                    "the group powercap at every boot, the udev rule "
                    f"'{UDEV_RULE}' in /etc/udev/rules.d/70-wattwise-powercap.rules, on the "
                    "host when this is a container (a read-only mount keeps the host's file "
                    f"modes); more in {PERMISSIONS_DOC}.",
                )
            except (OSError, ValueError) as err:
                self._ignored.append(f"{zone.zone_id} ({zone.name}): energy_uj unreadable: {err}")
                continue
            readable.append(zone)
        if not any(z.key.startswith("cpu:") for z in readable):
            return Availability(
                False,
                f"RAPL zones exist under {self._root} but no package energy_uj could be read.",
                "Check 'dmesg | grep -i rapl' for driver errors; the cpu-model meter "
                "estimates CPU energy meanwhile.",
            )
        self._zones = readable
        keys = ", ".join(f"{z.zone_id} ({z.name}) -> {z.key}" for z in readable)
        return Availability(True, f"RAPL counters readable: {keys}.")

    def components(self) -> tuple[Component, ...]:
        """``("cpu",)`` or ``("cpu", "dram")``, as found by the last probe."""
        if self._availability is None:
            self.probe()
        comps: list[Component] = ["cpu"] if self._zones else []
        if any(z.key.startswith("dram:") for z in self._zones):
            comps.append("dram")
        return tuple(comps)

    def _ensure_available(self) -> None:
        if self._availability is None:
            self.probe()
        assert self._availability is not None
        if self._availability.ok:
            return
        if self._unreadable is not None:
            msg = (
                f"Cannot read RAPL counters: permission denied on {self._unreadable}. "
                f"Run 'wattwise doctor' for the fix, or {_CPU_MODEL_WAY_OUT}."
            )
            raise MeterPermissionError(msg)
        msg = f"Cannot read RAPL counters: {self._availability.reason} {self._availability.hint}"
        raise MeterUnavailableError(msg)

    def _drop_mirrors(self, raws: dict[str, int]) -> None:
        kept: list[_Zone] = []
        for zone in self._zones:
            value = raws[zone.zone_id]
            twin = None
            if value > 0:
                for other in kept:
                    if other.key.split(":")[0] != zone.key.split(":")[0]:
                        continue
                    ref = raws[other.zone_id]
                    tol = max(_MIRROR_REL_TOLERANCE * max(value, ref), _MIRROR_ABS_TOLERANCE_UJ)
                    if ref > 0 and abs(value - ref) <= tol:
                        twin = other
                        break
            if twin is None:
                kept.append(zone)
            else:
                self._ignored.append(
                    f"{zone.zone_id} ({zone.name}): mirrors {twin.zone_id} (equal counters)"
                )
        self._zones = kept
        self._mirrors_checked = True

    def read(self) -> dict[str, float]:
        """Cumulative joules per domain since the first read (first call: all zeros).

        Raises:
            MeterPermissionError: The counters cannot be read (permission denied).
            MeterUnavailableError: There are no RAPL counters here.
            MeterError: A counter became unreadable mid-run.
        """
        self._ensure_available()
        raws: dict[str, int] = {}
        for zone in self._zones:
            try:
                raws[zone.zone_id] = int(self._read(zone.path / "energy_uj").strip())
            except (OSError, ValueError) as err:
                msg = (
                    f"Reading {zone.energy_file} under {self._root} failed mid-run: {err}. "
                    "The energy so far is kept; run 'wattwise doctor' to check the RAPL driver."
                )
                raise MeterError(msg) from err
        if not self._mirrors_checked:
            self._drop_mirrors(raws)
        self._started = True
        totals: dict[str, float] = {}
        for zone in self._zones:
            raw = raws[zone.zone_id]
            if zone.last_raw_uj is not None:
                delta = raw - zone.last_raw_uj
                if delta < 0:
                    # Wraparound: the counter passed max_energy_range_uj and restarted at 0.
                    # Without a known range (file missing or 0), count only what is visible.
                    delta = (
                        raw + zone.max_range_uj - zone.last_raw_uj if zone.max_range_uj else raw
                    )
                zone.total_uj += delta
            zone.last_raw_uj = raw
            totals[zone.key] = totals.get(zone.key, 0.0) + zone.total_uj / 1e6
        return totals

    def info(self) -> MeterInfo:
        """Which zones are read, which are ignored and why, and the counting rules."""
        if self._availability is None:
            self.probe()
        band, band_source = uncertainty_band("counter", "cpu")
        zones = [
            {
                "zone": z.zone_id,
                "name": z.name,
                "key": z.key,
                "max_energy_range_uj": z.max_range_uj,
            }
            for z in self._zones
        ]
        listed = ", ".join(f"{z.zone_id} ({z.name}) -> {z.key}" for z in self._zones)
        source = f"Linux powercap RAPL energy counters under {self._root}: {listed or 'none'}."
        assumptions = (
            "A package domain covers the cores, caches and uncore (and integrated graphics) "
            "of one socket; power supply losses, fans, disks, NICs and other host parts are "
            "not measured.",
            "The DRAM domain is reported only where the platform exposes one (Intel servers); "
            "AMD exposes none.",
            "core/uncore subzones lie inside their package and psys overlaps the packages, so "
            "neither is added.",
            "Mirrors are dropped: a zone name already taken from a preferred control type "
            "(intel-rapl, then intel-rapl-tpmi, then intel-rapl-mmio), or a counter equal to "
            "a kept one within 1e-6 relative or 1 J (CodeCarbon issue #1274).",
            "Wraparound: a reading lower than the previous adds max_energy_range_uj; reads "
            "must come more often than one full counter range (about 262 kJ on many parts).",
            "Figures are machine-wide; attribution to a process tree happens in "
            "wattwise.tracking.",
        )
        return MeterInfo(
            name=self.name,
            method=self.method,
            source=source,
            assumptions=assumptions,
            band_fraction=band,
            band_source=band_source,
            details={"zones": zones, "ignored": list(self._ignored), "root": str(self._root)},
        )

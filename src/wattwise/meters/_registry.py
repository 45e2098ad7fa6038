"""The meter registry: built-in meters plus plug-ins from the ``wattwise.meters`` entry point.

``select_meters``, ``probe_all`` and ``describe_hardware`` read this registry; nothing else
lists meters. Adding a meter is one module with a :class:`~wattwise.meters.BaseMeter`
subclass plus one registration:

* inside wattwise: its import path in ``_BUILTIN`` below;
* in another package: an entry point in that package's ``pyproject.toml``::

      [project.entry-points."wattwise.meters"]
      gpu-acme = "acme_wattwise.meter:AcmeGpuMeter"

  (the entry point's name must equal the class's ``name``);
* at run time (tests, notebooks): ``register_meter(AcmeGpuMeter)``.

Plug-ins are loaded on first use, once per process. Before the full entry-point scan of
``importlib.metadata`` (tens of milliseconds on every ``wattwise run``), the folders on
``sys.path`` are searched for a distribution whose ``entry_points.txt`` names the group at
all; only when one does (or when the path holds something this search cannot read: a zip
archive, a finder that lists distributions of its own) is the full scan made. A plug-in
that fails to load, or whose class breaks the rules, never stops selection: it is listed by
``probe_all`` as unavailable with the reason, and skipped.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.machinery
import os
import re
import sys
import threading
from pathlib import Path
from types import ModuleType

from wattwise.exceptions import InvalidParameterError
from wattwise.meters._base import COMPONENTS, Availability, BaseMeter, Component

ENTRY_POINT_GROUP = "wattwise.meters"
#: Environment variable naming a mounted powercap tree (containers, VMs).
RAPL_ROOT_ENV = "WATTWISE_RAPL_ROOT"
DEFAULT_POWERCAP_ROOT = Path("/sys/class/powercap")

# id -> "module:Class", in the order doctor lists them.
_BUILTIN: dict[str, str] = {
    "cpu-rapl": "wattwise.meters._rapl:RaplMeter",
    "cpu-model": "wattwise.meters._cpu_model:CpuModelMeter",
    "dram-model": "wattwise.meters._dram_model:DramModelMeter",
    "gpu-nvml": "wattwise.meters._nvml:NvmlMeter",
    "gpu-amdsmi": "wattwise.meters._amd:AmdSmiMeter",
    "soc-apple": "wattwise.meters._apple:AppleSiliconMeter",
}
_METHODS = ("counter", "sampled", "model", "user")
_ID = re.compile(r"^[a-z][a-z0-9]*(?:-[a-z0-9]+)*$")


@dataclasses.dataclass(frozen=True)
class MeterContext:
    """What a meter may need to build itself for selection.

    Attributes:
        rapl_root: The powercap directory (``$WATTWISE_RAPL_ROOT`` or ``/sys/class/powercap``).
        nvml: An NVML module instead of ``pynvml`` (tests), or None.
        amdsmi: An amdsmi module instead of ``amdsmi`` (tests), or None.
        apple: A ``zeus_apple_silicon``-like module (tests), or None.
        cpuinfo_path: The cpuinfo file.
        provider: Cloud provider whose CCF table the cpu-model meter uses.
        exclude: Components another selected meter already measures: leave them out.
    """

    rapl_root: Path = DEFAULT_POWERCAP_ROOT
    nvml: ModuleType | None = None
    amdsmi: ModuleType | None = None
    apple: ModuleType | None = None
    cpuinfo_path: Path = Path("/proc/cpuinfo")
    provider: str | None = None
    exclude: frozenset[str] = frozenset()

    def without(self, components: set[str] | frozenset[str]) -> MeterContext:
        """The same context, also excluding ``components``."""
        return dataclasses.replace(self, exclude=self.exclude | frozenset(components))


def rapl_root_from_env(default: Path = DEFAULT_POWERCAP_ROOT) -> Path:
    """``$WATTWISE_RAPL_ROOT`` when set and not empty, else ``default``."""
    value = os.environ.get(RAPL_ROOT_ENV, "").strip()
    return Path(value) if value else default


@dataclasses.dataclass(frozen=True)
class MeterEntry:
    """One registered meter.

    Attributes:
        name: Meter id.
        origin: ``built-in``, ``entry point <value> (<distribution>)`` or ``registered``.
        cls: The class, or None when it could not be loaded.
        error: Why it could not be loaded (empty when ``cls`` is set).
    """

    name: str
    origin: str
    cls: type[BaseMeter] | None
    error: str = ""

    @property
    def preference(self) -> int:
        """The class's preference (broken entries last)."""
        return self.cls.preference if self.cls is not None else 10_000

    @property
    def covers(self) -> tuple[Component, ...]:
        """The class's covered components (none for a broken entry)."""
        return self.cls.covers if self.cls is not None else ()


class _Registry:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.registered: dict[str, MeterEntry] = {}
        self.plugins: dict[str, MeterEntry] | None = None
        self.builtins: dict[str, MeterEntry] | None = None


_REGISTRY = _Registry()


def check_meter_class(cls: object, name: str | None = None) -> str:
    """Why ``cls`` cannot be a registered meter, or "" when it can.

    Args:
        cls: The candidate.
        name: The id it is registered under (an entry point's name), if any.
    """
    if not (isinstance(cls, type) and issubclass(cls, BaseMeter)):
        return f"{cls!r} is not a subclass of wattwise.meters.BaseMeter"
    meter_name = getattr(cls, "name", None)
    if not isinstance(meter_name, str) or not _ID.match(meter_name):
        return (
            f"{cls.__name__}.name must be a kebab-case id such as 'gpu-acme'; got {meter_name!r}"
        )
    if name is not None and name != meter_name:
        return f"the entry point is named {name!r} but {cls.__name__}.name is {meter_name!r}"
    if getattr(cls, "method", None) not in _METHODS:
        return f"{cls.__name__}.method must be one of {', '.join(_METHODS)}"
    covers = cls.covers
    if not covers or not all(c in COMPONENTS for c in covers):
        valid = ", ".join(COMPONENTS)
        return f"{cls.__name__}.covers must name one or more of {valid}; got {covers!r}"
    if isinstance(cls.preference, bool) or not isinstance(cls.preference, int):
        return f"{cls.__name__}.preference must be an int; got {cls.preference!r}"
    return ""


def _load(ref: str) -> type[BaseMeter]:
    module_name, _, attr = ref.partition(":")
    cls = getattr(importlib.import_module(module_name), attr)
    assert isinstance(cls, type) and issubclass(cls, BaseMeter)
    return cls


def _builtins() -> dict[str, MeterEntry]:
    if _REGISTRY.builtins is None:
        _REGISTRY.builtins = {
            name: MeterEntry(name, "built-in", _load(ref)) for name, ref in _BUILTIN.items()
        }
    return _REGISTRY.builtins


def _may_declare_plugins() -> bool:
    """False only when no distribution on ``sys.path`` can declare a ``wattwise.meters``
    entry point: every readable ``*.dist-info``/``*.egg-info`` folder's ``entry_points.txt``
    lacks the group's name, no path entry is a file (a zip archive, read by
    ``importlib.metadata`` but not here), and no import finder but the standard one lists
    distributions. Any doubt answers True, and the full scan decides.
    """
    for finder in sys.meta_path:
        if finder is not importlib.machinery.PathFinder and hasattr(finder, "find_distributions"):
            return True
    entries: list[object] = list(dict.fromkeys(sys.path))  # typed list[str], not always so
    for entry in entries:
        if not isinstance(entry, str):  # bytes or a path object: left to importlib.metadata
            return True
        folder = entry or "."
        try:
            names = os.listdir(folder)
        except NotADirectoryError:
            return True
        except OSError:  # absent or unreadable: importlib.metadata finds nothing there either
            if os.path.isfile(folder):
                return True
            continue
        for name in names:
            if not name.lower().endswith((".dist-info", ".egg-info")):
                continue
            path = os.path.join(folder, name, "entry_points.txt")
            try:
                with open(path, "rb") as handle:
                    text = handle.read()
            except (FileNotFoundError, NotADirectoryError):  # none, or a one-file .egg-info
                continue
            except OSError:
                return True
            if ENTRY_POINT_GROUP.encode() in text:
                return True
    return False


def _load_plugins() -> dict[str, MeterEntry]:
    found: dict[str, MeterEntry] = {}
    try:
        if not _may_declare_plugins():
            return found
        import importlib.metadata

        eps = importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)
    except Exception as err:  # a broken installation must not stop measuring
        return {
            "(entry points)": MeterEntry(
                "(entry points)", ENTRY_POINT_GROUP, None, f"reading entry points failed: {err}"
            )
        }
    for ep in eps:
        dist = getattr(getattr(ep, "dist", None), "name", None) or "unknown distribution"
        origin = f"entry point {ep.value} ({dist})"
        try:
            cls = ep.load()
        except Exception as err:
            found[ep.name] = MeterEntry(ep.name, origin, None, f"loading it failed: {err!r}")
            continue
        why = check_meter_class(cls, ep.name)
        if why:
            found[ep.name] = MeterEntry(ep.name, origin, None, why)
        else:
            found[ep.name] = MeterEntry(ep.name, origin, cls)
    return found


def register_meter(cls: type[BaseMeter]) -> type[BaseMeter]:
    """Register a meter class at run time (usable as a class decorator).

    Raises:
        InvalidParameterError: The class breaks the rules, or its id is taken.
    """
    why = check_meter_class(cls)
    if why:
        msg = f"Cannot register {cls!r} as a meter: {why}."
        raise InvalidParameterError(msg)
    with _REGISTRY.lock:
        if _REGISTRY.plugins is None:
            _REGISTRY.plugins = _load_plugins()
        if cls.name in _builtins() or cls.name in _REGISTRY.plugins:
            msg = (
                f"Cannot register {cls.__name__}: the meter id {cls.name!r} is already taken. "
                "Give the class another name."
            )
            raise InvalidParameterError(msg)
        _REGISTRY.registered[cls.name] = MeterEntry(cls.name, "registered", cls)
    return cls


def unregister_meter(name: str) -> None:
    """Remove a meter registered with :func:`register_meter` (no-op if absent)."""
    with _REGISTRY.lock:
        _REGISTRY.registered.pop(name, None)


def reload_plugins() -> None:
    """Forget loaded entry points so the next lookup scans them again (tests, notebooks)."""
    with _REGISTRY.lock:
        _REGISTRY.plugins = None


def _all_entries_locked() -> list[MeterEntry]:
    if _REGISTRY.plugins is None:
        _REGISTRY.plugins = _load_plugins()
    out = dict(_builtins())
    for source in (_REGISTRY.plugins, _REGISTRY.registered):
        for name, entry in source.items():
            if name in out:
                out[f"{name} ({entry.origin})"] = MeterEntry(
                    name, entry.origin, None, f"the id {name!r} is already taken by a built-in"
                )
                continue
            out[name] = entry
    return list(out.values())


def meter_entries() -> list[MeterEntry]:
    """Every registered meter, built-ins first in doctor order, then plug-ins."""
    with _REGISTRY.lock:
        return _all_entries_locked()


def meter_ids() -> list[str]:
    """The ids of every usable registered meter."""
    return [e.name for e in meter_entries() if e.cls is not None]


def meter_class(name: str) -> type[BaseMeter]:
    """The class registered as ``name``.

    Raises:
        InvalidParameterError: No usable meter has that id.
    """
    for entry in meter_entries():
        if entry.name == name and entry.cls is not None:
            return entry.cls
    valid = ", ".join(repr(m) for m in sorted(meter_ids()))
    msg = f"Unknown meter {name!r}. Valid meter ids are {valid}."
    raise InvalidParameterError(msg)


def broken_entries() -> list[tuple[str, Availability]]:
    """Plug-ins that could not be used, as (id, why) for doctor."""
    return [
        (
            e.name,
            Availability(
                False,
                f"The {e.name} plug-in ({e.origin}) cannot be used: {e.error}.",
                "Fix or uninstall the package that declares it.",
            ),
        )
        for e in meter_entries()
        if e.cls is None
    ]

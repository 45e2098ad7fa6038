"""Apple silicon energy without sudo: IOReport's "Energy Model" counters.

Read through the ``zeus-apple-silicon`` package (``pip install 'wattwise[apple]'``, macOS
on Apple silicon only), whose ``AppleEnergyMonitor.get_cumulative_energy()`` returns the
chip's cumulative counters in mJ (``zeus_apple_silicon`` 1.1, ``apple_energy.hpp``). No
root is needed: IOReport is readable by any user, unlike ``powermetrics``.

Domains (one key each; a channel the chip lacks is left out):

========  ==============================================  ====================
key       IOReport channels (as the package parses them)  component
========  ==============================================  ====================
cpu:0     "CPU Energy" (all clusters and managers); the   cpu
          cluster channels summed when it is missing
dram:0    "DRAM*"                                          dram
gpu:0     "GPU Energy" + "GPU SRAM*"                      gpu (integrated)
npu:0     "ANE*" (Apple Neural Engine)                    npu
========  ==============================================  ====================

Per-cluster figures (efficiency and performance clusters) are kept in
``info().details["clusters_mj"]`` from the last reading; they are inside ``cpu:0``, so they
are not separate keys (that would count them twice).

Attribution: the cpu and dram rules of ``wattwise.tracking`` apply as on any machine; no
macOS interface lists GPU or neural-engine use per process, so those are charged whole
(``device_processes()`` answers None, the whole-device rule).
"""

from __future__ import annotations

import dataclasses
import importlib
import sys
from types import ModuleType
from typing import Any, ClassVar

from wattwise.exceptions import MeterError, MeterUnavailableError
from wattwise.meters._base import (
    COMPONENTS,
    Availability,
    BaseMeter,
    Component,
    MeterInfo,
    Method,
)
from wattwise.meters._hardware import uncertainty_band

_APPLE_EXTRA_HINT = "Install it with: pip install 'wattwise[apple]' (macOS on Apple silicon)."


@dataclasses.dataclass
class _Domain:
    key: str
    last_mj: int | None = None
    counted_mj: int = 0


def _total(metrics: Any, key: str) -> int | None:
    """The raw cumulative mJ of one domain from an AppleEnergyMetrics, or None."""
    if key == "cpu:0":
        total = getattr(metrics, "cpu_total_mj", None)
        if total is not None:
            return int(total)
        clusters = [
            *(getattr(metrics, "efficiency_cluster_mj", None) or []),
            *(getattr(metrics, "performance_cluster_mj", None) or []),
        ]
        return int(sum(clusters)) if clusters else None
    if key == "dram:0":
        value = getattr(metrics, "dram_mj", None)
        return None if value is None else int(value)
    if key == "gpu:0":
        gpu = getattr(metrics, "gpu_mj", None)
        if gpu is None:
            return None
        return int(gpu) + int(getattr(metrics, "gpu_sram_mj", None) or 0)
    value = getattr(metrics, "ane_mj", None)
    return None if value is None else int(value)


class AppleSiliconMeter(BaseMeter):
    """CPU, DRAM, GPU and neural-engine energy of an Apple silicon chip, from IOReport.

    Args:
        module: A ``zeus_apple_silicon``-like module (tests pass
            ``wattwise.testing.fake_ioreport.FakeAppleSilicon``); None imports the package.
        exclude: Components to leave out (another meter measures them).
    """

    name: ClassVar[str] = "soc-apple"
    method: ClassVar[Method] = "counter"
    covers: ClassVar[tuple[Component, ...]] = ("cpu", "dram", "gpu", "npu")
    optional_covers: ClassVar[tuple[Component, ...] | None] = ("cpu", "dram", "gpu", "npu")
    preference: ClassVar[int] = 10
    way_out: ClassVar[str] = "leave 'soc-apple' out of meters (cpu-model estimates CPU energy)"
    platforms: ClassVar[tuple[str, ...]] = ("darwin",)

    def __init__(
        self, module: ModuleType | None = None, *, exclude: tuple[str, ...] | frozenset[str] = ()
    ) -> None:
        self._module_obj = module
        self._exclude = frozenset(exclude)
        self._monitor: Any = None
        self._domains: list[_Domain] = []
        self._clusters: dict[str, list[int]] = {}

    @classmethod
    def from_context(cls, context: Any) -> AppleSiliconMeter:
        """The meter on ``context.apple``, leaving out ``context.exclude``."""
        return cls(module=context.apple, exclude=context.exclude)

    def _probe(self) -> Availability:
        """Subscribe to IOReport and see which channels the chip has."""
        self._domains = []
        if self._module_obj is None and sys.platform != "darwin":
            return Availability(
                False,
                f"Apple silicon energy (IOReport) exists on macOS only; this is {sys.platform}.",
                "Nothing to fix here: this meter is for Macs with Apple silicon.",
            )
        try:
            module = self._module_obj or importlib.import_module("zeus_apple_silicon")
        except ImportError:
            return Availability(False, "zeus-apple-silicon is not installed.", _APPLE_EXTRA_HINT)
        self._module_obj = module
        try:
            self._monitor = module.AppleEnergyMonitor()
            metrics = self._monitor.get_cumulative_energy()
        except RuntimeError as err:
            return Availability(
                False,
                f"IOReport refused the energy subscription: {err}",
                "This needs macOS on Apple silicon (M1 or later); Intel Macs have no "
                "IOReport energy model.",
            )
        for key in ("cpu:0", "dram:0", "gpu:0", "npu:0"):
            if key.split(":")[0] in self._exclude:
                continue
            if _total(metrics, key) is not None:
                self._domains.append(_Domain(key))
        if not self._domains:
            return Availability(
                False,
                "IOReport answered but reports no energy channel this meter reads.",
                "Run 'wattwise doctor --debug' and report the chip model.",
            )
        keys = ", ".join(d.key for d in self._domains)
        return Availability(True, f"IOReport energy counters: {keys}.")

    def components(self) -> tuple[Component, ...]:
        """The components with a channel on this chip."""
        if self._availability is None:
            self.probe()
        comps = [d.key.split(":")[0] for d in self._domains]
        return tuple(c for c in COMPONENTS if c in comps)

    def read(self) -> dict[str, float]:
        """Cumulative joules per domain since the first read (first call: all zeros).

        Raises:
            MeterUnavailableError: IOReport is not available here.
            MeterError: A reading failed mid-run.
        """
        if self._availability is None:
            self.probe()
        assert self._availability is not None
        if not self._availability.ok:
            state = self._availability
            msg = f"Cannot read Apple silicon energy: {state.reason} {state.hint}"
            raise MeterUnavailableError(msg)
        try:
            metrics = self._monitor.get_cumulative_energy()
        except RuntimeError as err:
            msg = f"Reading IOReport failed mid-run: {err}. The energy so far is kept."
            raise MeterError(msg) from err
        self._started = True
        self._clusters = {
            "efficiency": list(getattr(metrics, "efficiency_cluster_mj", None) or []),
            "performance": list(getattr(metrics, "performance_cluster_mj", None) or []),
        }
        out: dict[str, float] = {}
        for dom in self._domains:
            raw = _total(metrics, dom.key)
            if raw is None:
                continue  # a channel that vanished: keep the total so far
            if dom.last_mj is not None:
                delta = raw - dom.last_mj
                dom.counted_mj += delta if delta >= 0 else raw  # reset: counts from zero
            dom.last_mj = raw
            out[dom.key] = dom.counted_mj / 1000.0
        return out

    def device_processes(self) -> dict[str, dict[int, int] | None]:
        """None for the integrated GPU: macOS lists no per-process GPU use (whole device)."""
        return {d.key: None for d in self._domains if d.key == "gpu:0"}

    def devices(self) -> list[dict[str, object]]:
        """The integrated GPU, for the hardware record (``GpuMeter`` protocol)."""
        if self._availability is None:
            self.probe()
        if not any(d.key == "gpu:0" for d in self._domains):
            return []
        return [
            {
                "index": 0,
                "key": "gpu:0",
                "vendor": "apple",
                "name": "Apple silicon integrated GPU",
                "memory_mib": None,
                "power_limit_w": None,
                "driver": None,
                "method": "counter",
            }
        ]

    def info(self) -> MeterInfo:
        """Which channels are read and how they map to components."""
        if self._availability is None:
            self.probe()
        band, _ = uncertainty_band("counter", "cpu")
        keys = ", ".join(d.key for d in self._domains) or "none"
        return MeterInfo(
            name=self.name,
            method="counter",
            source=f"IOReport Energy Model counters through zeus-apple-silicon: {keys}.",
            assumptions=(
                "cpu:0 is IOReport's CPU Energy channel (every cluster and its manager); "
                "dram:0 the DRAM channels; gpu:0 GPU Energy plus GPU SRAM; npu:0 the Apple "
                "Neural Engine (ANE) channels.",
                "Instrument error of IOReport's energy model is not published; no band.",
                "A reading lower than the previous one restarts the count from zero.",
                "GPU and neural-engine energy are charged to a run whole: macOS lists no "
                "per-process use of either.",
            ),
            band_fraction=band,
            band_source="IOReport energy model; instrument error not published.",
            details={"domains": [d.key for d in self._domains], "clusters_mj": self._clusters},
        )

    def close(self) -> None:
        """Drop the IOReport subscription."""
        self._monitor = None
        self._availability = None
        self._started = False

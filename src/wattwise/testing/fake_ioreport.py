"""A fake ``zeus_apple_silicon`` (Apple silicon energy through IOReport) for tests.

It follows the real package's reading shape (``zeus-apple-silicon`` 1.1,
``apple_energy/apple_energy.hpp`` and its nanobind bindings):

* ``AppleEnergyMonitor()`` subscribes to IOReport's "Energy Model" group; its
  ``get_cumulative_energy()`` returns an ``AppleEnergyMetrics`` of cumulative counters,
  and ``begin_window(key, restart=False)``/``end_window(key)`` the difference over a window.
* ``AppleEnergyMetrics`` fields, all in mJ and each None when the channel does not exist
  on the chip: ``cpu_total_mj`` (int), ``efficiency_cores_mj``, ``performance_cores_mj``,
  ``efficiency_cluster_mj``, ``performance_cluster_mj`` (lists of int, one per core or
  cluster), ``efficiency_core_manager_mj``, ``performance_core_manager_mj``, ``dram_mj``,
  ``gpu_mj``, ``gpu_sram_mj``, ``ane_mj`` (int).
* Creating the monitor raises ``RuntimeError`` when the subscription fails.

Example::

    clock = ManualClock()
    soc = FakeSoc(cpu_w=6.0, gpu_w=12.0, ane_w=1.5, dram_w=0.8)
    meter = AppleSiliconMeter(module=FakeAppleSilicon(soc, clock=clock))
"""

from __future__ import annotations

import dataclasses
import types
from collections.abc import Callable, Sequence


@dataclasses.dataclass
class AppleEnergyMetrics:
    """Same fields as ``zeus_apple_silicon.AppleEnergyMetrics`` (mJ, None = unavailable)."""

    cpu_total_mj: int | None = None
    efficiency_cores_mj: list[int] | None = None
    performance_cores_mj: list[int] | None = None
    efficiency_cluster_mj: list[int] | None = None
    performance_cluster_mj: list[int] | None = None
    efficiency_core_manager_mj: int | None = None
    performance_core_manager_mj: int | None = None
    dram_mj: int | None = None
    gpu_mj: int | None = None
    gpu_sram_mj: int | None = None
    ane_mj: int | None = None


_Metrics = AppleEnergyMetrics


@dataclasses.dataclass
class FakeSoc:
    """Constant powers of a fake system-on-chip, W; None = the channel does not exist.

    ``cluster_split`` divides the CPU power among E and P clusters (fractions), as the
    cluster channels of a real chip add up to the CPU total.
    """

    cpu_w: float | None = 5.0
    cluster_split: Sequence[tuple[str, float]] = (("E", 0.2), ("P", 0.8))
    dram_w: float | None = 0.5
    gpu_w: float | None = 10.0
    gpu_sram_w: float | None = 0.2
    ane_w: float | None = 1.0
    offset_mj: int = 123_456  # counters since boot do not start at zero


class FakeAppleSilicon(types.ModuleType):
    """A module object with ``AppleEnergyMonitor`` and ``AppleEnergyMetrics``.

    Args:
        soc: The chip's powers.
        clock: Seconds; counters grow as power x ``clock()``.
        fail_subscription: Creating a monitor raises RuntimeError as the real one does when
            IOReport refuses the subscription.
        reset_at: Times (seconds) at which the counters restart from zero (a reboot-like
            reset, to test that totals never decrease).
    """

    AppleEnergyMetrics: type[AppleEnergyMetrics] = AppleEnergyMetrics

    def __init__(
        self,
        soc: FakeSoc | None = None,
        *,
        clock: Callable[[], float] = lambda: 0.0,
        fail_subscription: bool = False,
        reset_at: Sequence[float] = (),
    ) -> None:
        super().__init__("zeus_apple_silicon", "Fake zeus_apple_silicon (wattwise.testing).")
        self.soc = soc or FakeSoc()
        self.clock = clock
        self.fail_subscription = fail_subscription
        self.reset_at = sorted(reset_at)
        self.monitors = 0
        outer = self

        class AppleEnergyMonitor:
            """IOReport subscription (fake)."""

            def __init__(self) -> None:
                if outer.fail_subscription:
                    msg = "Failed to create IOReport subscription."
                    raise RuntimeError(msg)
                outer.monitors += 1
                self._windows: dict[str, AppleEnergyMetrics] = {}

            def get_cumulative_energy(self) -> AppleEnergyMetrics:
                return outer._metrics()

            def begin_window(self, key: str, restart: bool = False) -> None:
                if key in self._windows and not restart:
                    msg = f"Measurement window '{key}' already exists."
                    raise RuntimeError(msg)
                self._windows[key] = outer._metrics()

            def end_window(self, key: str) -> AppleEnergyMetrics:
                start = self._windows.pop(key)
                end = outer._metrics()
                return _difference(end, start)

        self.AppleEnergyMonitor = AppleEnergyMonitor

    def _metrics(self) -> _Metrics:
        t = self.clock()
        since = max((r for r in self.reset_at if r <= t), default=None)
        elapsed = t - since if since is not None else t
        offset = 0 if since is not None else self.soc.offset_mj

        def mj(watts: float | None) -> int | None:
            return None if watts is None else offset + int(watts * elapsed * 1000)

        soc = self.soc
        clusters = {kind: [mj(soc.cpu_w * f) for k, f in soc.cluster_split if k == kind]
                    for kind in ("E", "P")} if soc.cpu_w is not None else {}  # fmt: skip
        return _Metrics(
            cpu_total_mj=mj(soc.cpu_w),
            efficiency_cluster_mj=[v for v in clusters.get("E", []) if v is not None] or None,
            performance_cluster_mj=[v for v in clusters.get("P", []) if v is not None] or None,
            dram_mj=mj(soc.dram_w),
            gpu_mj=mj(soc.gpu_w),
            gpu_sram_mj=mj(soc.gpu_sram_w),
            ane_mj=mj(soc.ane_w),
        )


def _difference(end: AppleEnergyMetrics, start: AppleEnergyMetrics) -> AppleEnergyMetrics:
    out = AppleEnergyMetrics()
    for field in dataclasses.fields(AppleEnergyMetrics):
        a, b = getattr(end, field.name), getattr(start, field.name)
        if a is None or b is None:
            continue
        if isinstance(a, list):
            setattr(out, field.name, [x - y for x, y in zip(a, b, strict=False)])
        else:
            setattr(out, field.name, a - b)
    return out

"""A fake meter for tests and examples: a counter that grows at a constant power."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import ClassVar

from wattwise.meters import Availability, BaseMeter, Component, MeterInfo, Method, component_of


class FakeMeter(BaseMeter):
    """Machine-wide counters that grow at ``power_w[key]`` watts.

    Args:
        power_w: Domain key → constant machine-wide power in watts (``{"cpu:0": 20.0}``).
        method: The method to report (``counter`` by default).
        band_fraction: Relative band to report, or None.
        clock: Time source in seconds (default ``time.monotonic``).
    """

    name = "fake"
    method: ClassVar[Method] = "counter"
    covers: ClassVar[tuple[Component, ...]] = ("cpu", "dram", "gpu", "npu")

    def __init__(
        self,
        power_w: Mapping[str, float],
        *,
        method: Method = "counter",
        band_fraction: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.power_w = dict(power_w)
        self._method = method
        self._band = band_fraction
        self._clock = clock
        self._t0 = clock()

    def probe(self) -> Availability:
        """Always available."""
        return Availability(True, "fake meter for tests")

    def components(self) -> tuple[Component, ...]:
        """Components named by the keys."""
        return tuple(sorted({component_of(k) for k in self.power_w}))

    def read(self) -> dict[str, float]:
        """Power × time since construction, per key."""
        elapsed = self._clock() - self._t0
        return {key: watts * elapsed for key, watts in self.power_w.items()}

    def info(self) -> MeterInfo:
        """Reports the configured method and band."""
        return MeterInfo(
            name=self.name,
            method=self._method,
            source=f"fake constant power {self.power_w} W",
            band_fraction=self._band,
            band_source="test configuration" if self._band is not None else "",
        )


class ManualClock:
    """A clock the test moves by hand: ``clock.t += 2.0``."""

    def __init__(self, t: float = 0.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t

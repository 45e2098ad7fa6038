"""A meter that replays a recorded energy sequence: runs measured without the hardware.

Give it what a real meter read at successive samples (cumulative joules per domain key, as
``BaseMeter.read`` returns them) and it returns one reading per call, then keeps the last
(a counter that stopped). Pass it to a run like any meter: ``wattwise.track("t",
meters=[ReplayMeter(readings)])``. With the run's settings it makes energy figures exact and
repeatable, so attribution, budgets and reports can be tested against known numbers.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

from wattwise.exceptions import InvalidParameterError
from wattwise.meters import Availability, BaseMeter, Component, MeterInfo, Method, component_of


class ReplayMeter(BaseMeter):
    """Replays ``readings``: the first ``read()`` returns the first, and so on.

    Args:
        readings: Cumulative joules per domain key (``{"cpu:0": 12.5, "gpu:0": 80.0}``), one
            mapping per sample, each key present in every one and never decreasing (a
            counter's wraparound is the real meter's to undo before it is recorded).
        method: The method to report (``counter``, ``sampled``, ``model``, ``user``).
        source: Where the sequence comes from (kept in the run record).
        band_fraction: Relative uncertainty to report, or None.

    Raises:
        InvalidParameterError: The sequence is empty, keys differ between samples, a value
            is not a finite number >= 0, or a counter goes down.
    """

    name = "replay"
    method: ClassVar[Method] = "counter"
    covers: ClassVar[tuple[Component, ...]] = ("cpu", "dram", "gpu", "npu")

    def __init__(
        self,
        readings: Iterable[Mapping[str, float]],
        *,
        method: Method = "counter",
        source: str = "a recorded energy sequence",
        band_fraction: float | None = None,
    ) -> None:
        self.readings = _checked(readings)
        self._method = method
        self._source = source
        self._band = band_fraction
        self._next = 0
        self._lock = threading.Lock()

    @classmethod
    def from_power(
        cls, power_w: Mapping[str, Iterable[float]], *, interval_s: float, **kwargs: Any
    ) -> ReplayMeter:
        """A replay of power samples (watts per key, one every ``interval_s`` seconds),
        integrated into the counter a meter would have read (starting at 0 J)."""
        if not interval_s > 0:
            msg = f"The 'interval_s' parameter must be > 0. Got {interval_s!r} instead."
            raise InvalidParameterError(msg)
        series = {key: list(values) for key, values in power_w.items()}
        lengths = {len(v) for v in series.values()}
        if len(lengths) != 1:
            msg = f"Every key needs as many power samples. Got lengths {sorted(lengths)}."
            raise InvalidParameterError(msg)
        total = dict.fromkeys(series, 0.0)
        readings = [dict(total)]
        for i in range(lengths.pop()):
            for key, values in series.items():
                total[key] += float(values[i]) * interval_s
            readings.append(dict(total))
        return cls(readings, **kwargs)

    @property
    def remaining(self) -> int:
        """Readings not yet returned."""
        with self._lock:
            return max(0, len(self.readings) - self._next)

    def probe(self) -> Availability:
        """Always available."""
        return Availability(True, f"replays {len(self.readings)} recorded readings")

    def components(self) -> tuple[Component, ...]:
        """Components named by the keys."""
        return tuple(sorted({component_of(k) for k in self.readings[0]}))

    def read(self) -> dict[str, float]:
        """The next recorded reading (the last one once the sequence is spent)."""
        with self._lock:
            index = min(self._next, len(self.readings) - 1)
            self._next += 1
        return dict(self.readings[index])

    def info(self) -> MeterInfo:
        """Reports the given method, source and band."""
        return MeterInfo(
            name=self.name,
            method=self._method,
            source=self._source,
            band_fraction=self._band,
            band_source="given with the replay" if self._band is not None else "",
        )


def _checked(readings: Iterable[Mapping[str, float]]) -> list[dict[str, float]]:
    out = [dict(r) for r in readings]
    if not out:
        msg = "A ReplayMeter needs at least one reading. Got an empty sequence."
        raise InvalidParameterError(msg)
    keys = set(out[0])
    if not keys:
        msg = "A ReplayMeter reading needs at least one domain key ('cpu:0'). Got {}."
        raise InvalidParameterError(msg)
    for key in keys:
        try:
            component_of(key)
        except ValueError as err:
            raise InvalidParameterError(str(err)) from None
    previous: dict[str, float] = {}
    for i, reading in enumerate(out):
        if set(reading) != keys:
            msg = (
                f"Reading {i} has keys {sorted(reading)}, the first has {sorted(keys)}; "
                "every reading of a ReplayMeter needs the same keys."
            )
            raise InvalidParameterError(msg)
        for key, value in reading.items():
            number = float(value)
            if not 0 <= number < float("inf"):
                msg = f"Reading {i} has {key}={value!r}; joules must be a finite number >= 0."
                raise InvalidParameterError(msg)
            if number < previous.get(key, 0.0):
                msg = (
                    f"Reading {i} has {key}={number} J after {previous[key]} J; a counter "
                    "never goes down (undo wraparound before replaying)."
                )
                raise InvalidParameterError(msg)
            reading[key] = previous[key] = number
    return out

"""Helpers of the job tests: a fake per-host RAPL counter advanced by a thread, with a log
precise enough to bound what any reader could have seen between two moments.

The processes these tests start are stopped by ``daemon_support`` (``started``,
``kill_group``: their own process groups only)."""

from __future__ import annotations

import bisect
import os
import threading
import time
from pathlib import Path


class FakeRaplHost:
    """A powercap tree with one package counter (``intel-rapl:0/energy_uj``) that a thread
    advances at ``power_w`` (point ``WATTWISE_RAPL_ROOT`` at :attr:`root`).

    Every write is logged as (time before, time after, value), so for any moment t we know
    the least and the most a reader can have seen (the write is atomic: a rename).
    """

    def __init__(self, root: Path, power_w: float, step_s: float = 0.02) -> None:
        self.root = root
        self.power_w = power_w
        self.step_s = step_s
        zone = root / "intel-rapl:0"
        zone.mkdir(parents=True)
        (zone / "name").write_text("package-0\n")
        (zone / "max_energy_range_uj").write_text("262143328850\n")
        self._file = zone / "energy_uj"
        self._value_uj = 1_000_000_000
        self._before: list[float] = []
        self._after: list[float] = []
        self._values: list[int] = []
        self._stop = threading.Event()
        self._write()
        self._thread = threading.Thread(target=self._loop, name="fake-rapl", daemon=True)

    def _write(self) -> None:
        before = time.time()
        tmp = self._file.with_suffix(".tmp")
        tmp.write_text(f"{self._value_uj}\n")
        os.replace(tmp, self._file)
        after = time.time()
        self._before.append(before)
        self._after.append(after)
        self._values.append(self._value_uj)

    def _loop(self) -> None:
        last = time.monotonic()
        while not self._stop.wait(self.step_s):
            now = time.monotonic()
            self._value_uj += int(self.power_w * (now - last) * 1e6)
            last = now
            self._write()

    def start(self) -> FakeRaplHost:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def most_seen_j(self, t: float) -> float:
        """The highest value (J) a read at or before ``t`` can have returned."""
        i = bisect.bisect_right(self._before, t) - 1
        return self._values[max(i, 0)] / 1e6

    def least_seen_j(self, t: float) -> float:
        """The lowest value (J) a read at or after ``t`` can have returned."""
        i = bisect.bisect_right(self._after, t) - 1
        return self._values[max(i, 0)] / 1e6

    def increase_j(self, start: float, end: float) -> float:
        """The most the counter can have been seen to rise between ``start`` and ``end``."""
        return self.most_seen_j(end) - self.least_seen_j(start)


#: Float rounding allowed when checking "never above the counter" (sums of J differences).
ROUNDING_J = 1e-6

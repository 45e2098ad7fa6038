"""Energy from power readings: integration, averaging-window correction and coverage.

Used by meters whose device has no energy counter (NVIDIA GPUs before Volta, Jetson and
some vGPU; AMD GPUs whose counter is absent or invalid). Practices from Yang, Adamek and
Armour, "Accurate and Convenient Energy Measurements for GPUs: A Detailed Study of NVIDIA
GPU's Built-in Power Sensor", SC'24 (arXiv 2312.02741, "Part-time Power Measurements:
nvidia-smi's Lack of Attention"), as far as wattwise uses them:

* **Sample fast.** Readings are taken by a background thread every ``poll_interval_s``
  (0.1 s by default: faster than the shortest power-sample period NVIDIA documents for the
  power reading, 1/6 s, "between 1 second and 1/6 second, depending on the product" in the
  nvidia-smi query documentation as repeated by ``torch.cuda.power_draw``), so no sensor
  update is missed, and not only at the tracker's own (slower) sample times.
* **Correct for the averaging window.** When the reading is an average over the last
  ``window_s`` seconds (NVML ``nvmlDeviceGetPowerUsage``: "On Ampere (except GA100) or
  newer GPUs, the API returns power averaged over 1 sec interval. On GA100 and older
  architectures, instantaneous power is returned"), each reading describes the window
  that ends at its time, so it is placed at the window's centre, ``t - window_s / 2`` (the
  delay of a trailing moving average), before the trapezoid rule is applied.
* **Say what was not observed.** Coverage is the share of the metered time that lies
  inside some reading's window, times the share of that window the sensor itself
  observes (``sensor_coverage``: 0.25 on A100 and H100, where Yang et al. find "only 25 %
  of the runtime is sampled"; taken as 1 where the study gives no figure). The band is
  ``1 - coverage``: the share of the energy that rests on interpolation, not on the
  sensor. With instantaneous readings the covered time is unknown and no band is given.
* **Never 0 W without a reason.** A reading of exactly 0 W from a powered device means the
  sensor did not report (an MI250 die whose twin reports for both, a vGPU): it is not a
  sample; it is counted in ``zero_readings`` and the device's reason says so.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable

#: Seconds between background power readings (see the module docstring for why).
DEFAULT_POLL_INTERVAL_S = 0.1


@dataclasses.dataclass
class _State:
    last_t: float | None = None  # shifted time of the last accepted sample
    last_w: float | None = None
    energy_j: float = 0.0
    first_t: float | None = None
    covered_s: float = 0.0
    covered_until: float | None = None
    samples: int = 0
    zero_readings: int = 0
    errors: int = 0


class PowerIntegrator:
    """Integrates one device's power readings into cumulative joules.

    Args:
        read_w: Returns the device's power in watts now; may raise.
        window_s: Length of the sensor's averaging window in seconds, or None when the
            reading is instantaneous.
        sensor_coverage: Share of each window the sensor itself observes, or None when
            not known (taken as 1 and said so).
        poll_interval_s: Seconds between background readings, or None for readings at
            ``sample()`` calls only (tests, or a caller that samples itself).
        clock: Monotonic seconds.

    After :meth:`stop` returns, no background reading is integrated: a read still in
    progress (a stuck device) is waited for a bounded time, then left, and its reading is
    dropped when it comes. ``sample()`` is the caller's own reading, integrated whenever
    it is called.
    """

    def __init__(
        self,
        read_w: Callable[[], float],
        *,
        window_s: float | None,
        sensor_coverage: float | None = None,
        poll_interval_s: float | None = DEFAULT_POLL_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._read_w = read_w
        self.window_s = window_s
        self.sensor_coverage = sensor_coverage
        self.poll_interval_s = poll_interval_s
        self._clock = clock
        self._state = _State()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.last_error: BaseException | None = None

    # -- sampling ------------------------------------------------------------------------

    def sample(self) -> None:
        """Take one reading now; raises what ``read_w`` raises."""
        self._take(None)

    def _take(self, stopped: threading.Event | None) -> None:
        """Read and integrate, unless ``stopped`` (a background reader's) is set by then."""
        watts = float(self._read_w())
        now = self._clock()
        self._add(now, watts, stopped)

    def _add(self, now: float, watts: float, stopped: threading.Event | None = None) -> None:
        with self._lock:
            if stopped is not None and stopped.is_set():
                return  # read by a reader stopped meanwhile (set under this lock): dropped
            st = self._state
            if watts <= 0.0:
                st.zero_readings += 1
                return
            half = self.window_s / 2.0 if self.window_s else 0.0
            t = now - half
            if st.last_t is not None and st.last_w is not None:
                if t <= st.last_t:
                    return  # clock did not move: nothing to integrate
                st.energy_j += (st.last_w + watts) / 2.0 * (t - st.last_t)
            if st.first_t is None:
                st.first_t = t
            if self.window_s:
                start = max(now - self.window_s, st.covered_until or (now - self.window_s))
                if now > start:
                    st.covered_s += now - start
                st.covered_until = now
            st.last_t, st.last_w = t, watts
            st.samples += 1

    def start(self) -> None:
        """Start the background reader (no-op without ``poll_interval_s`` or if running)."""
        if self.poll_interval_s is None or self._thread is not None:
            return
        # Each reader its own flag: a reader stopped while stuck in a read stays stopped
        # when a new one starts.
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(self._stop, self.poll_interval_s),
            name="wattwise-power-sampler", daemon=True,
        )  # fmt: skip
        self._thread.start()

    def _run(self, stopped: threading.Event, interval_s: float) -> None:
        while not stopped.wait(interval_s):
            try:
                self._take(stopped)
            except Exception as err:  # a failing reading must never reach the job
                with self._lock:
                    if stopped.is_set():
                        return
                    self._state.errors += 1
                    self.last_error = err

    def stop(self) -> None:
        """Stop the background reader: none of its readings is integrated after this
        returns. The wait for a read in progress is bounded (a stuck device cannot hang
        the caller): such a read's reading is dropped."""
        thread, self._thread = self._thread, None
        with self._lock:  # an integration in progress ends first; none starts after
            self._stop.set()
        if thread is not None:
            thread.join(timeout=max(1.0, 4 * (self.poll_interval_s or 0.0)))

    # -- results -------------------------------------------------------------------------

    @property
    def energy_j(self) -> float:
        """Joules integrated so far (from the first accepted reading)."""
        with self._lock:
            return self._state.energy_j

    def coverage(self) -> float | None:
        """Share of the metered time observed by the sensor, or None when unknown."""
        with self._lock:
            st = self._state
            if not self.window_s or st.first_t is None or st.covered_until is None:
                return None
            span = st.covered_until - (st.first_t - self.window_s / 2.0)
            if span <= 0:
                return None
            polled = min(1.0, st.covered_s / span)
        return polled * (self.sensor_coverage if self.sensor_coverage is not None else 1.0)

    def planned_coverage(self) -> float | None:
        """The coverage the configured polling gives, before any reading."""
        if not self.window_s:
            return None
        interval = self.poll_interval_s
        polled = 1.0 if interval is None or interval <= self.window_s else self.window_s / interval
        return polled * (self.sensor_coverage if self.sensor_coverage is not None else 1.0)

    def stats(self) -> dict[str, object]:
        """Samples, zero readings, failed readings, coverage, window and interval."""
        coverage = self.coverage()
        with self._lock:
            st = self._state
            return {
                "samples": st.samples,
                "zero_readings": st.zero_readings,
                "failed_readings": st.errors,
                "coverage": None if coverage is None else round(coverage, 4),
                "window_s": self.window_s,
                "sensor_coverage": self.sensor_coverage,
                "poll_interval_s": self.poll_interval_s,
            }


def band_from_coverage(coverage: float | None) -> float | None:
    """``1 - coverage`` when some time was not observed; None when complete or unknown."""
    if coverage is None or coverage >= 1.0:
        return None
    return round(1.0 - max(0.0, coverage), 4)

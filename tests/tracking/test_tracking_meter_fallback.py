"""A meter that stops working mid-run: the component falls back, the run says so once.

With meters chosen by default, a meter that stops (its counter file vanishes: a driver
unloaded, a VM migrated) is replaced by the next best meter that works for its components,
as at start: RAPL by the CPU and DRAM models here. The run raises one
``MeterFallbackWarning``, the job goes on, and the record says who measured what and from
when. Meters the user named or gave are kept exactly: their components go unmeasured from
then on, said the same way.

RAPL is the real meter reading a powercap tree in a temporary folder (this machine has no
RAPL counters to unplug); the models are the real ones.
"""

from __future__ import annotations

import os
import sys
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

import wattwise
from wattwise.exceptions import MeterError, MeterFallbackWarning, StoreWarning
from wattwise.meters import select_meters
from wattwise.store import RunStatus, open_store
from wattwise.testing import FakeMeter
from wattwise.tracking import LiveSample, add_run_observer

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "meters"))
from meters_support import make_zone

WATTS = 40.0


def busy(seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass


def _write(zone: Path, microjoules: int) -> None:
    """Set a zone's counter atomically (a reader never sees half a number)."""
    tmp = zone / "energy_uj.tmp"
    tmp.write_text(f"{microjoules}\n")
    os.replace(tmp, zone / "energy_uj")


class Counters:
    """A powercap tree whose package and DRAM counters grow at WATTS until unplugged."""

    def __init__(self, root: Path) -> None:
        self.zones = [make_zone(root, "intel-rapl:0", "package-0", energy_uj=1),
                      make_zone(root, "intel-rapl:0:2", "dram", energy_uj=1)]  # fmt: skip
        self.unplugged = threading.Event()
        self._lock = threading.Lock()  # a tick writes whole: unplug() never races one
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._tick, daemon=True)
        self._thread.start()

    def _tick(self) -> None:
        t0 = time.monotonic()
        while not self._stop.wait(0.02):
            with self._lock:
                if self.unplugged.is_set():
                    continue
                uj = 1 + int((time.monotonic() - t0) * WATTS * 1e6)
                for zone in self.zones:
                    _write(zone, uj)

    def unplug(self) -> None:
        with self._lock:  # a tick in progress ends first, and none writes after
            self.unplugged.set()
            for zone in self.zones:
                (zone / "energy_uj").unlink()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


@pytest.fixture
def counters(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Counters]:
    root = tmp_path / "powercap"
    monkeypatch.setenv("WATTWISE_RAPL_ROOT", str(root))
    made = Counters(root)
    yield made
    made.stop()


def test_rapl_stopping_mid_run_falls_back_to_the_models_with_one_warning(
    counters: Counters,
) -> None:
    assert [m.name for m in select_meters().meters][:1] == ["cpu-rapl"]
    models = select_meters(components=["cpu", "dram"], exclude=["cpu-rapl"]).meters
    if {m.name for m in models} != {"cpu-model", "dram-model"}:
        pytest.skip("the CPU and DRAM models do not work on this machine")
    modelled: list[float] = []  # the CPU energy of each sample taken by the model

    def seen(sample: LiveSample) -> None:
        modelled.extend(c.energy_j for c in sample.components
                        if c.component == "cpu" and c.meter == "cpu-model")  # fmt: skip

    remove = add_run_observer(seen)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with wattwise.track("t", interval_s=0.05, flush_s=0.1) as run:
                deadline = time.monotonic() + 120  # a loaded machine ticks and samples late
                while run.snapshot()["energy_j"] <= 0:  # the counters counted something
                    assert time.monotonic() < deadline, "the counters never rose"
                    busy(0.05)
                counters.unplug()
                while not [w for w in caught if issubclass(w.category, MeterFallbackWarning)]:
                    assert time.monotonic() < deadline, "the stopped counters were never noticed"
                    busy(0.05)
                # Busy until the model has counted some of it (a loaded machine samples late)
                while len(modelled) < 2 or modelled[-1] <= modelled[0]:
                    assert time.monotonic() < deadline, "the model never counted the CPU's work"
                    busy(0.05)
                done = "the block ran to its end"
    finally:
        remove()
    assert done
    said = [w for w in caught if issubclass(w.category, MeterFallbackWarning)]
    assert len(said) == 1, [str(w.message) for w in said]
    text = str(said[0].message)
    assert "cpu-rapl stopped working" in text and "energy_uj" in text
    assert "cpu is estimated with the cpu-model meter from then on" in text
    assert "dram is estimated with the dram-model meter from then on" in text
    assert not [w for w in caught if issubclass(w.category, StoreWarning)]

    result = run.result
    assert result.status == "finished"
    cpu = next(c for c in result.components if c.component == "cpu")
    assert (cpu.method, cpu.meter) == ("model", "cpu-model")
    (switch,) = cpu.info["fallback"]
    assert (switch["from"], switch["to"]) == ("cpu-rapl", "cpu-model")
    assert 0 < switch["energy_before_j"] < cpu.energy_j  # counted, then estimated
    assert switch["band_fraction_before"] is None  # counters state no band
    frac = run.meter_infos["cpu-model"].band_fraction
    assert frac is not None and cpu.band_j is not None
    assert cpu.band_j == pytest.approx((cpu.energy_j - switch["energy_before_j"]) * frac)

    stored = open_store().get_run(run.id)
    assert stored.status is RunStatus.FINISHED
    assert stored.record["meter_errors"] == [text.removeprefix("wattwise: ")]
    assert {"cpu-rapl", "cpu-model", "dram-model"} <= set(stored.record["meters"])
    assert text.removeprefix("wattwise: ") in stored.record["warnings"]
    (cpu_stored,) = [c for c in stored.components if c.component == "cpu"]
    assert cpu_stored.meter == "cpu-model" and cpu_stored.info["fallback"][0]["to"] == "cpu-model"


def test_a_meter_named_by_the_user_is_not_replaced_and_its_component_stops(
    counters: Counters,
) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with wattwise.track("t", meters=["cpu-rapl"], interval_s=0.05, flush_s=0.1) as run:
            busy(0.5)
            counters.unplug()
            busy(0.5)
    said = [str(w.message) for w in caught if issubclass(w.category, MeterFallbackWarning)]
    assert len(said) == 1 and "cpu is not measured from then on" in said[0], said
    cpu = next(c for c in run.result.components if c.component == "cpu")
    assert cpu.meter == "cpu-rapl" and cpu.method == "counter"
    (switch,) = cpu.info["fallback"]
    assert switch["to"] is None and cpu.energy_j == switch["energy_before_j"] > 0
    assert run.result.status == "finished"


class StoppingMeter(FakeMeter):
    """Reads like a counter three times, then says it stopped (a MeterError), for good."""

    def __init__(self) -> None:
        super().__init__({"cpu:0": 20.0})
        self.reads = 0

    def read(self) -> dict[str, float]:
        self.reads += 1
        if self.reads > 3:
            msg = "the counter went away"
            raise MeterError(msg)
        return super().read()


def test_a_given_meter_that_stops_keeps_its_energy_and_is_said_once() -> None:
    meter = StoppingMeter()
    notes: list[str] = []
    with wattwise.track("t", meters=[meter], interval_s=0.05, flush_s=0.05,
                        on_warning=notes.append) as run:  # fmt: skip
        deadline = time.monotonic() + 120  # a loaded machine samples late: no fixed sleep
        while not any("stopped working" in n for n in notes) and time.monotonic() < deadline:
            busy(0.05)
        busy(0.6)  # many intervals after it stopped: said once
    (note,) = [n for n in notes if "stopped working" in n]
    assert "meter fake stopped working" in note and "the counter went away" in note
    assert "cpu is not measured from then on" in note
    assert meter.reads == 4  # dropped at its first failure, never read again
    cpu = run.result.components[0]
    assert cpu.energy_j > 0 and cpu.info["fallback"][0]["to"] is None
    assert open_store().get_run(run.id).record["meter_errors"] == [note]

"""The public test seam: meters=[...] takes meter objects; ReplayMeter replays readings."""

from __future__ import annotations

import pytest

import wattwise
from wattwise.exceptions import InvalidParameterError
from wattwise.store import open_store
from wattwise.testing import FakeMeter, ReplayMeter


def test_a_replayed_sequence_gives_exact_energy() -> None:
    readings = [{"gpu:0": 5.0}, {"gpu:0": 15.0}, {"gpu:0": 45.0}]
    replay = ReplayMeter(readings, method="sampled", source="an A100", band_fraction=0.05)
    with wattwise.track("replayed", meters=[replay], interval_s=60) as run:
        assert run.snapshot()["energy_j"] == 10.0  # the start read 5 J, this one 15 J
    result = run.result
    assert (result.energy_j, result.machine_energy_j, result.energy_band_j) == (40.0, 40.0, 2.0)
    assert replay.remaining == 0
    record = open_store().get_run(run.id).record
    assert record["meters"]["replay"]["method"] == "sampled"
    assert record["meters"]["replay"]["source"] == "an A100"


def test_a_spent_replay_keeps_its_last_reading() -> None:
    replay = ReplayMeter([{"cpu:0": 1.0}])
    assert [replay.read(), replay.read()] == [{"cpu:0": 1.0}, {"cpu:0": 1.0}]


def test_power_samples_are_integrated_into_a_counter() -> None:
    replay = ReplayMeter.from_power({"gpu:0": [100.0, 300.0]}, interval_s=0.5)
    assert [replay.read()["gpu:0"] for _ in range(3)] == [0.0, 50.0, 200.0]
    assert replay.components() == ("gpu",)


@pytest.mark.parametrize(
    ("readings", "match"),
    [([], "at least one reading"), ([{}], "at least one domain key"),
     ([{"cpu:0": 1.0}, {"dram:0": 2.0}], "needs the same keys"),
     ([{"cpu:0": 2.0}, {"cpu:0": 1.0}], "never goes down"),
     ([{"cpu:0": float("nan")}], "finite number >= 0"),
     ([{"disk:0": 1.0}], "Unknown energy domain key 'disk:0'")],
)  # fmt: skip
def test_bad_sequences_are_refused(readings: list[dict[str, float]], match: str) -> None:
    with pytest.raises(InvalidParameterError, match=match):
        ReplayMeter(readings)


def test_meter_ids_and_objects_mix_and_a_bare_meter_is_refused() -> None:
    with wattwise.track("mixed", meters=[FakeMeter({"gpu:0": 1.0})], interval_s=60) as run:
        pass
    assert list(run.meter_infos) == ["fake"]
    with pytest.raises(InvalidParameterError, match="'meters' parameter must be a list"):
        wattwise.track("bare", meters=FakeMeter({"cpu:0": 1.0}))  # type: ignore[arg-type]
    with pytest.raises(InvalidParameterError, match="put it in a list"):
        wattwise.track("bare", meters="cpu-rapl")


def test_an_empty_meter_list_measures_nothing() -> None:
    with wattwise.track("none", meters=[]) as run:
        pass
    assert run.meter_infos == {} and run.result.energy_j == 0.0

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from cache_support import Calls

import wattwise
from wattwise.cache import cached
from wattwise.cli import main
from wattwise.store import open_store, project_footprint
from wattwise.testing import FakeMeter


def busy(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def meters() -> list[FakeMeter]:
    return [FakeMeter({"cpu:0": 50.0})]


class WorkClock:
    """A fake meter's clock that moves only while the cached function works: the work's
    energy is exact, and what the tracker or the cache spend around it is not metered
    (however slowly a loaded machine runs them)."""

    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_a_miss_inside_a_run_is_measured_and_a_hit_books_what_it_avoided() -> None:
    calls = Calls()
    clock = WorkClock()
    power_w, work_s = 50.0, 0.3  # the work: 15 J on a whole (fake) device

    def work_meters() -> list[FakeMeter]:
        return [FakeMeter({"gpu:0": power_w}, clock=clock)]

    @cached
    def features(n: int) -> np.ndarray:
        calls()
        busy(work_s)  # real time too: the cost's duration is wall time
        clock.t += work_s
        return np.ones(n)

    with wattwise.track("first", meters=work_meters(), interval_s=0.05) as first:
        features(10)
    entry = features.cache.entries()[0]
    cost = entry.cost
    assert cost["producer_run_id"] == first.id
    assert cost["method"] == "measured" and cost["meters"] == {"fake": "counter"}
    assert 0.25 <= cost["duration_s"] < first.result.duration_s
    # The measured cost is the work's energy, a part of the run's own energy.
    assert cost["energy_j"] == pytest.approx(power_w * work_s)
    assert cost["energy_j"] <= first.result.energy_j + 1e-9
    assert cost["co2e_g"] > 0 and cost["region"] == "FR"

    with wattwise.track("second", meters=work_meters(), interval_s=0.05) as second:
        features(10)
    assert calls.n == 1
    store = open_store()
    [event] = store.reuse_events()
    assert event.cache_key == entry.key and event.function.endswith(".features")
    assert event.producer_run_id == first.id and event.consumer_run_id == second.id
    assert event.energy_avoided_j == pytest.approx(cost["energy_j"])
    assert event.co2e_avoided_g == pytest.approx(cost["co2e_g"])
    assert "this run's grid intensity" in event.basis and "measured" in event.method
    # The hit skipped the work: the second run spent none of its energy (the avoided
    # energy is booked beside the run, never added to it). What a hit costs against the
    # work, on a real meter, is benchmarks/cache_reuse.py's target (a timed ratio).
    assert second.result.energy_j == 0.0

    totals = store.reuse_totals()
    assert (totals.hits, totals.energy_j) == (1, pytest.approx(cost["energy_j"]))
    fp = project_footprint(store.list_runs(), saved_by_reuse=totals)
    assert fp.to_dict()["saved_by_reuse"] == {
        "energy_j": pytest.approx(cost["energy_j"]),
        "co2e_g": pytest.approx(cost["co2e_g"]),
        "hits": 1,
        "duration_s": pytest.approx(cost["duration_s"]),
    }
    # Reuse is shown beside the totals, never subtracted from them.
    assert fp.total.energy_j == pytest.approx(first.result.energy_j + second.result.energy_j)


def test_footprint_shows_saved_by_reuse(capsys: pytest.CaptureFixture[str]) -> None:
    @cached
    def stage(x: int) -> int:
        busy(0.05)
        return x

    with wattwise.track("a", meters=meters()):
        stage(1)
        stage(1)
        stage(1)
    assert main(["footprint"]) == 0
    out = capsys.readouterr().out
    assert "Saved by reuse: 2 cache hits avoided" in out
    assert main(["footprint", "--json"]) == 0
    saved = json.loads(capsys.readouterr().out)["saved_by_reuse"]
    assert saved["hits"] == 2 and saved["energy_j"] > 0 and saved["co2e_g"] > 0


def test_a_miss_outside_any_run_gets_its_own_cache_fill_run() -> None:
    @cached
    def stage(x: int) -> int:
        busy(0.1)
        return x

    assert stage(1) == 1
    assert stage(1) == 1
    store = open_store()
    [fill] = store.list_runs()
    assert fill.kind == "cache-fill" and fill.name == "cache-fill:stage"
    assert fill.parent_id is None and "cache-fill" in fill.tags
    cost = stage.cache.entries()[0].cost
    assert cost["producer_run_id"] == fill.id
    assert 0 < cost["energy_j"] <= fill.energy_j
    assert cost["duration_s"] >= 0.1
    [event] = store.reuse_events()
    assert event.consumer_run_id is None and "producer's grid intensity" in event.basis


def test_cache_fill_runs_nest_inside_a_wattwise_run_command() -> None:
    script = (
        "import time, wattwise\n"
        "@wattwise.cached\n"
        "def stage(x):\n"
        "    end = time.perf_counter() + 0.1\n"
        "    while time.perf_counter() < end: pass\n"
        "    return x\n"
        "stage(1); stage(1)\n"
    )
    Path("pipeline.py").write_text(script)
    env = {**os.environ, "WATTWISE_INTERVAL_S": "0.1", "WATTWISE_FLUSH_S": "0.3"}
    out = subprocess.run(
        [sys.executable, "-m", "wattwise", "run", "-q", "--", sys.executable, "pipeline.py"],
        capture_output=True, text=True, timeout=120, env=env,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    store = open_store()
    runs = {r.kind: r for r in store.list_runs()}
    assert runs["cache-fill"].parent_id == runs["command"].id  # not counted twice
    fp = project_footprint(store.list_runs(), saved_by_reuse=store.reuse_totals())
    assert fp.total.runs == 1 and fp.saved_by_reuse.hits == 1
    assert store.reuse_events()[0].consumer_run_id == runs["command"].id

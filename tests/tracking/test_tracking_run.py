from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import wattwise
from wattwise.carbon import intensity_for, operational_co2e_g, pue_for, resolve_location
from wattwise.exceptions import InvalidParameterError, RunStateError
from wattwise.store import RunStatus, open_store, project_footprint
from wattwise.testing import FakeMeter


def busy(seconds: float) -> int:
    end = time.perf_counter() + seconds
    n = 0
    while time.perf_counter() < end:
        n += 1
    return n


def fake() -> list[FakeMeter]:
    return [FakeMeter({"cpu:0": 20.0, "dram:0": 4.0}, method="model", band_fraction=0.4)]


def test_track_block_records_energy_carbon_and_metrics() -> None:
    with wattwise.track("unit", config={"lr": 0.1}, interval_s=0.05, meters=fake()) as run:
        body_began = time.monotonic()
        busy(0.4)
        run.log(step=1, acc=0.5)
        run.log(step=2, acc=0.75, loss=0.1)
        body_s = time.monotonic() - body_began
    res = run.result
    assert res.status == "finished"
    assert res.duration_s >= 0.4
    comps = {c.component: c for c in res.components}
    assert set(comps) == {"cpu", "dram"}
    # Attributed energy never exceeds what the whole machine used.
    assert 0 < comps["cpu"].energy_j <= comps["cpu"].machine_energy_j + 1e-9
    # The meters are read as the run starts and as it finishes, so the 20 W counter is seen
    # over at least the block's body and at most the run's duration: whatever the load.
    assert 20.0 * body_s <= comps["cpu"].machine_energy_j <= 20.0 * res.duration_s * (1 + 1e-6)
    assert comps["cpu"].band_j == pytest.approx(0.4 * comps["cpu"].energy_j)
    assert res.energy_j == pytest.approx(sum(c.energy_j for c in res.components))
    loc = resolve_location("FR")
    expected = operational_co2e_g(res.energy_j, intensity_for(loc), pue_for(loc))
    assert res.co2e_g == pytest.approx(expected)
    assert res.co2e_band_g == pytest.approx(res.co2e_g * res.energy_band_j / res.energy_j)

    store = open_store()
    stored = store.get_run(res.id)
    assert stored.status is RunStatus.FINISHED
    assert stored.params == {"lr": 0.1}
    assert stored.energy_j == pytest.approx(res.energy_j)
    assert [(s, k, v) for s, k, v, _ in store.metrics(res.id)] == [
        (1, "acc", 0.5), (2, "acc", 0.75), (2, "loss", 0.1),
    ]
    assert stored.record["summary"] == {"acc": 0.75, "loss": 0.1}
    assert stored.record["sampler"]["samples"] >= 2
    assert stored.record["sampler"]["cpu_s"] >= 0
    assert stored.record["intensity"]["zone"] == "FR"
    assert stored.record["environment"]["packages"]["psutil"]
    assert store.samples(res.id)


def test_exception_marks_run_failed_and_propagates() -> None:
    with pytest.raises(ZeroDivisionError), wattwise.track("boom", meters=fake()) as run:
        _ = 1 / 0
    assert run.result.status == "failed"
    stored = open_store().get_run(run.id)
    assert stored.status is RunStatus.FAILED
    assert "ZeroDivisionError" in stored.record["error"]


def test_a_run_cannot_be_entered_twice() -> None:
    run = wattwise.track("once", meters=fake())
    with run:
        pass
    with pytest.raises(RunStateError, match="already been started"), run:
        pass
    with pytest.raises(RunStateError, match="not running"):
        run.log(x=1)


def test_result_before_end_is_an_error() -> None:
    with wattwise.track("early", meters=fake()) as run:
        with pytest.raises(RunStateError, match="has not ended"):
            _ = run.result
        with pytest.raises(InvalidParameterError, match="must be a number"):
            run.log(acc="high")  # type: ignore[arg-type]


def test_decorator_starts_a_run_per_call() -> None:
    @wattwise.track(meters=fake())
    def step(x: int) -> int:
        wattwise.log(x=x)
        return x * 2

    assert step(1) == 2
    assert step(2) == 4
    runs = open_store().list_runs()
    assert len(runs) == 2
    assert all(r.name.endswith("step") for r in runs)


def test_nested_run_is_linked_to_its_parent_and_left_out_of_totals() -> None:
    with wattwise.track("outer", meters=fake()) as outer:
        busy(0.1)
        with wattwise.track("inner", meters=fake()) as inner:
            busy(0.2)
    store = open_store()
    assert store.get_run(inner.id).parent_id == outer.id
    assert store.get_run(outer.id).parent_id is None
    assert inner.result.energy_j > 0  # the nested run cost something of its own ...
    footprint = project_footprint(store.list_runs())
    assert footprint.total.runs == 1  # ... yet the totals hold the outer run alone
    assert footprint.total.energy_j == pytest.approx(outer.result.energy_j)
    assert footprint.total.co2e_g == pytest.approx(outer.result.co2e_g)
    assert footprint.total.energy_j < outer.result.energy_j + inner.result.energy_j


def test_log_outside_any_run_says_what_to_do() -> None:
    with pytest.raises(RunStateError, match=r"wattwise\.track"):
        wattwise.log(acc=1.0)


def test_running_run_is_flushed_periodically() -> None:
    other = open_store()  # a second reader, as another process would be
    with wattwise.track("flushy", interval_s=0.05, flush_s=0.2, meters=fake()) as run:
        # The main thread stays busy; the sampler must still get to flush (shared, loaded
        # CI machines can be slow, hence a generous deadline rather than a fixed wait).
        deadline = time.monotonic() + 120
        while other.get_run(run.id).energy_j <= 0 and time.monotonic() < deadline:
            busy(0.1)
        live = other.get_run(run.id)
        assert live.status is RunStatus.RUNNING
        assert live.energy_j > 0
        assert live.record["sampler"]["samples"] >= 1
    other.close()


def _busy_tracked(seconds: float, queue: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    start = time.monotonic()  # CLOCK_MONOTONIC: one clock for every process
    with wattwise.track("twin", interval_s=0.1, meters=fake()) as run:
        busy(seconds)
    # Taken around the whole run (its start and finish included, however slow a loaded
    # machine makes them): every joule the run counted was spent inside this window.
    queue.put((run.result.components[0].energy_j, start, time.monotonic()))


def test_two_concurrent_runs_never_count_the_same_joule() -> None:
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_busy_tracked, args=(2.0, queue)) for _ in range(2)]
    for p in procs:
        p.start()
    results = [queue.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(60)
    # Both processes see the same 20 W machine counter; their shares of any interval add
    # up to at most 1, so together they cannot claim more than 20 W over the time either
    # ran (double counting would give about twice that). The windows hold each run's start
    # and finish; 0.5 s of slack at 20 W for the two runs' sampling intervals not lining up.
    union_s = max(end for _, _, end in results) - min(start for _, start, _ in results)
    cpu_total = sum(e for e, _, _ in results)
    assert cpu_total <= 20.0 * (union_s + 0.5)
    assert all(e > 0 for e, _, _ in results)


KILLED_SCRIPT = textwrap.dedent(
    """
    import time, wattwise
    from wattwise.testing import FakeMeter
    with wattwise.track("doomed", interval_s=0.05, flush_s=0.2,
                        meters=[FakeMeter({"cpu:0": 50.0})]) as run:
        print(run.id, flush=True)
        end = time.time() + 60
        while time.time() < end:
            pass
    """
)


def test_sigkilled_run_keeps_flushed_energy_and_is_marked_crashed(tmp_path: Path) -> None:
    script = tmp_path / "doomed.py"
    script.write_text(KILLED_SCRIPT)
    cmd = [sys.executable, str(script)]
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True) as proc:
        assert proc.stdout is not None
        run_id = proc.stdout.readline().strip()
        store = open_store()
        try:
            deadline = time.monotonic() + 120  # a loaded machine flushes late: wait for it
            while store.get_run(run_id).energy_j <= 0:
                assert time.monotonic() < deadline, "the run never flushed any energy"
                time.sleep(0.1)
        finally:
            os.kill(proc.pid, signal.SIGKILL)  # the process this test started, by its pid
            proc.wait()
    run = store.get_run(run_id)
    assert run.status is RunStatus.CRASHED
    assert run.energy_j > 0
    assert run.ended_at == run.heartbeat_at

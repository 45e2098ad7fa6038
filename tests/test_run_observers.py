"""The one run-observer interface: its events, in order, on the threads its contract names;
an observer that raises is dropped and said once, and never reaches the run."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

import wattwise
from wattwise.exceptions import WattwiseWarning
from wattwise.testing import FakeMeter
from wattwise.tracking import LiveSample, Run, RunObserver, RunResult, add_run_observer

WATTS = {"cpu:0": 20.0}


def busy_until(done: Any, timeout_s: float = 30.0) -> None:
    """Work until ``done()`` holds (a loaded machine samples late: no fixed sleep)."""
    end = time.perf_counter() + timeout_s
    while not done():
        assert time.perf_counter() < end, "the condition never held"
        stop = time.perf_counter() + 0.02
        while time.perf_counter() < stop:
            pass


class Heard(RunObserver):
    """Writes down each event, with the thread it came on."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str, Any]] = []

    def _note(self, event: str, what: Any) -> None:
        self.events.append((event, threading.current_thread().name, what))

    def started(self, run: Run) -> None:
        self._note("started", run.id)

    def logged(self, run: Run, step: int | None, metrics: Mapping[str, float]) -> None:
        self._note("logged", (run.id, step, dict(metrics)))

    def sampled(self, sample: LiveSample) -> None:
        self._note("sampled", sample)

    def ended(self, run: Run, result: RunResult) -> None:
        self._note("ended", (run.id, result))


def test_an_observer_hears_start_logs_samples_and_end_on_the_threads_it_is_told() -> None:
    heard = Heard()
    remove = add_run_observer(heard)
    try:
        with wattwise.track("observed", meters=[FakeMeter(WATTS)], interval_s=0.05) as run:
            run.log(step=0, loss=0.9)
            busy_until(lambda: sum(e[0] == "sampled" for e in heard.events) >= 2)
            run.log(step=1, loss=0.5)
    finally:
        remove()
    mine = [e for e in heard.events if e[0] != "sampled" or e[2].run_id == run.id]
    kinds = [e[0] for e in mine]
    main = threading.current_thread().name
    assert kinds[0] == "started" and mine[0][1:] == (main, run.id)
    assert kinds[-2:] == ["sampled", "ended"]  # the final sample, then the result
    logged = [e for e in mine if e[0] == "logged"]
    assert [e[2] for e in logged] == [(run.id, 0, {"loss": 0.9}), (run.id, 1, {"loss": 0.5})]
    assert {e[1] for e in logged} == {main}  # the thread that logged
    samples = [e for e in mine if e[0] == "sampled"]
    assert all(e[1] == "wattwise-sampler" for e in samples[:-1])  # the sampler thread...
    assert samples[-1][1] == main  # ...and the end on the thread that ends the run
    assert [e[2].status for e in samples] == ["running"] * (len(samples) - 1) + ["finished"]
    ended_id, result = mine[-1][2]
    assert ended_id == run.id and result == run.result and mine[-1][1] == main
    assert samples[-1][2].energy_j == result.energy_j > 0


class Broken(RunObserver):
    def __init__(self, event: str) -> None:
        self.event = event
        self.calls = 0

    def _maybe(self, event: str) -> None:
        if event == self.event:
            self.calls += 1
            msg = f"boom in {event}"
            raise RuntimeError(msg)

    def started(self, run: Run) -> None:
        self._maybe("started")

    def logged(self, run: Run, step: int | None, metrics: Mapping[str, float]) -> None:
        self._maybe("logged")

    def ended(self, run: Run, result: RunResult) -> None:
        self._maybe("ended")


@pytest.mark.parametrize("event", ["started", "logged", "ended"])
def test_an_observer_that_raises_is_dropped_said_once_and_the_run_goes_on(event: str) -> None:
    broken, heard = Broken(event), Heard()
    removes = [add_run_observer(broken), add_run_observer(heard)]

    def job() -> Run:
        with wattwise.track("strict", meters=[FakeMeter(WATTS)], interval_s=0.05,
                            strict=True) as run:  # fmt: skip
            for step in range(3):
                run.log(step=step, loss=1.0)
        return run

    try:
        with pytest.warns(WattwiseWarning, match=rf"failed and was dropped.*{event}: "
                                                 rf"RuntimeError: boom") as said:  # fmt: skip
            run = job()
        with wattwise.track("later", meters=[FakeMeter(WATTS)], interval_s=0.05) as later:
            later.log(step=0, loss=1.0)
    finally:
        for remove in removes:
            remove()
    assert broken.calls == 1  # dropped: it hears nothing more, of any run
    assert sum("dropped" in str(w.message) for w in said) == 1
    assert run.result.status == "finished" and run.result.energy_j > 0
    assert sum("boom" in text for text in run.warnings) == 1  # kept with the run
    assert [e[0] for e in heard.events if e[0] == "ended"] == ["ended", "ended"]  # the others


def test_at_exit_an_open_run_ends_before_the_observers_close(tmp_path: Path) -> None:
    code = textwrap.dedent("""
        import wattwise
        from wattwise.testing import FakeMeter
        from wattwise.tracking import RunObserver, add_run_observer

        class Exit(RunObserver):
            def ended(self, run, result):
                print("ended", result.status, flush=True)

            def closing(self):
                print("closing", flush=True)

        add_run_observer(Exit())
        run = wattwise.track("left-open", meters=[FakeMeter({"cpu:0": 5.0})]).start()
        run.log(step=0, loss=1.0)
    """)
    env = {"PATH": "/usr/bin:/bin", "WATTWISE_REGION": "FR", "HOME": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["ended", "failed", "closing"]

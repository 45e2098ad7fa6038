"""What recording a run's environment costs the user: run start, and work slowed by it.

One command (about 20 s):

    .venv/bin/python benchmarks/run_capture.py

Every run captures its code version (git: commit, branch, remote, status, the diff),
installed distributions (from metadata), OS, allow-listed variables and hardware, on a
background thread. Measured here, in this repository (a git work tree, dirty or not):

* ``capture()`` itself, synchronously (what the background thread does), median;
* ``Run.start()`` latency, with capture and with capture switched off: what the user
  waits before the block's body runs (target: capture adds < 50 ms);
* a ``track`` block around a fixed amount of pure-Python work (about 0.3 s), with and
  without capture: how much the background thread (it shares the GIL) delays the
  user's first work, finish included (``finish`` waits for the capture to end).

Medians of interleaved repetitions; fake meters, so meter reads do not vary.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any


def work(n: int) -> int:
    """A fixed amount of pure-Python CPU work (it needs the GIL throughout)."""
    total = 0
    for i in range(n):
        total += i * i ^ (i >> 3)
    return total


def calibrate(seconds: float) -> int:
    """Iterations of :func:`work` that take about ``seconds`` here."""
    n = 1_000_000
    t0 = time.perf_counter()
    work(n)
    return max(1, int(n * seconds / (time.perf_counter() - t0)))


def measure(reps: int) -> dict[str, Any]:
    """The three figures, each a median over ``reps`` (seconds)."""
    import wattwise
    from wattwise.repro import capture
    from wattwise.testing import FakeMeter
    from wattwise.tracking import Run

    captures = []
    for _ in range(reps):
        t0 = time.perf_counter()
        capture(Path.cwd(), sys.argv)
        captures.append(time.perf_counter() - t0)

    n = calibrate(0.3)
    original = Run._capture_environment
    starts: dict[str, list[float]] = {"on": [], "off": []}
    blocks: dict[str, list[float]] = {"on": [], "off": []}
    for _ in range(reps):
        for mode in ("on", "off"):
            off = lambda self: None  # noqa: E731
            Run._capture_environment = original if mode == "on" else off  # type: ignore[method-assign]
            run = wattwise.track("bench", meters=[FakeMeter({"cpu:0": 10.0})])
            t0 = time.perf_counter()
            run.start()
            starts[mode].append(time.perf_counter() - t0)
            run.finish()
            t0 = time.perf_counter()
            with wattwise.track("bench", meters=[FakeMeter({"cpu:0": 10.0})]):
                work(n)
            blocks[mode].append(time.perf_counter() - t0)
    Run._capture_environment = original  # type: ignore[method-assign]
    med = statistics.median
    return {
        "capture_s": med(captures),
        "start_with_capture_s": med(starts["on"]),
        "start_without_capture_s": med(starts["off"]),
        "start_added_s": med(starts["on"]) - med(starts["off"]),
        "block_with_capture_s": med(blocks["on"]),
        "block_without_capture_s": med(blocks["off"]),
        "block_added_s": med(blocks["on"]) - med(blocks["off"]),
        "reps": reps,
        "cwd": str(Path.cwd()),
    }


def main() -> int:
    """Print the figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--reps", type=int, default=9)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    os.environ.setdefault("WATTWISE_REGION", "FR")
    os.environ.setdefault("WATTWISE_STORE", str(Path(".wattwise") / "bench-capture.db"))
    try:
        result = measure(args.reps)
    finally:
        for suffix in ("", "-wal", "-shm"):
            Path(os.environ["WATTWISE_STORE"] + suffix).unlink(missing_ok=True)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    ms = {k: v * 1000 for k, v in result.items() if k.endswith("_s")}
    verdict = "ok" if result["start_added_s"] < 0.05 else "MISSED"
    print(f"capture() on its own (background thread's work): {ms['capture_s']:.1f} ms")
    print(f"Run.start(): {ms['start_with_capture_s']:.1f} ms with capture, "
          f"{ms['start_without_capture_s']:.1f} ms without: capture adds "
          f"{ms['start_added_s']:+.1f} ms to run start (target < 50 ms: {verdict})")  # fmt: skip
    print(f"track block around 0.3 s of CPU work: {ms['block_with_capture_s']:.1f} ms with "
          f"capture, {ms['block_without_capture_s']:.1f} ms without "
          f"({ms['block_added_s']:+.1f} ms, GIL shared with the capture thread)")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

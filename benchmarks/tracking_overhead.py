"""Cost of measuring: tracking overhead, fixed start cost, the sampler's own CPU.

One command, ratios against baselines measured in the same run (the machines are shared
and noisy: medians, interleaved repetitions):

    .venv/bin/python benchmarks/tracking_overhead.py            # full: 10 s loop x 5
    .venv/bin/python benchmarks/tracking_overhead.py --quick    # 2 s loop x 3

Targets (issue #2): overhead < 1 % on a 10 s CPU-bound loop; ``wattwise run -- python -c
pass`` at most 0.3 s over bare ``python -c pass``; sampler CPU < 1 % of one core at 1 Hz.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

LOOP = """
import sys, time
n = int(sys.argv[1]); mode = sys.argv[2]
def work():
    s = 0
    for i in range(n):
        s += i * i ^ (i >> 3)
    return s
if mode == "tracked":
    import wattwise
    b0 = time.perf_counter()
    with wattwise.track("bench", interval_s=1.0):
        t0 = time.perf_counter()
        work()
        t = time.perf_counter() - t0
    print(t, time.perf_counter() - b0)
else:
    t0 = time.perf_counter()
    work()
    t = time.perf_counter() - t0
    print(t, t)
"""


def calibrate(seconds: float) -> int:
    """Iterations of the loop that take about ``seconds`` here."""
    n = 2_000_000
    t0 = time.perf_counter()
    s = 0
    for i in range(n):
        s += i * i ^ (i >> 3)
    per = (time.perf_counter() - t0) / n
    return int(seconds / per)


def run_loop(script: Path, n: int, mode: str, env: dict[str, str]) -> tuple[float, float]:
    """(work time, whole block time incl. run start and finish) in seconds."""
    out = subprocess.run([sys.executable, str(script), str(n), mode], capture_output=True,
                         text=True, check=True, env=env)  # fmt: skip
    work, block = out.stdout.split()
    return float(work), float(block)


def timed(cmd: list[str], env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, capture_output=True)
    return time.perf_counter() - t0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="2 s loop, 3 repetitions")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    seconds, reps = (2.0, 3) if args.quick else (10.0, 5)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / ".wattwise").mkdir()
        script = root / "loop.py"
        script.write_text(LOOP)
        env = {**os.environ, "WATTWISE_STORE": str(root / ".wattwise" / "ledger.db")}
        env.setdefault("WATTWISE_REGION", "FR")
        n = calibrate(seconds)
        bare_t, tracked_t, tracked_block = [], [], []
        for _ in range(reps):  # interleaved, so drifts in host load hit both alike
            bare_t.append(run_loop(script, n, "bare", env)[0])
            work, block = run_loop(script, n, "tracked", env)
            tracked_t.append(work)
            tracked_block.append(block)
        starts_bare, starts_run = [], []
        py = [sys.executable, "-c", "pass"]
        for _ in range(max(reps, 7)):
            starts_bare.append(timed(py, env))
            wrapped = [sys.executable, "-m", "wattwise", "run", "-q", "--", *py]
            starts_run.append(timed(wrapped, env))
        from wattwise.store import get_store

        store = get_store(str(root / ".wattwise" / "ledger.db"), readonly=True)
        long_runs = [r for r in store.list_runs() if r.name == "bench"]
        sampler = [
            r.record["sampler"]["cpu_s"] / r.duration_s for r in long_runs if r.duration_s > 0
        ]
        store.close()
    result = {
        "loop_seconds": seconds,
        "repetitions": reps,
        "untracked_median_s": statistics.median(bare_t),
        "tracked_median_s": statistics.median(tracked_t),
        "overhead_ratio": statistics.median(tracked_t) / statistics.median(bare_t),
        "tracked_block_median_s": statistics.median(tracked_block),
        "block_ratio": statistics.median(tracked_block) / statistics.median(bare_t),
        "bare_python_start_median_s": statistics.median(starts_bare),
        "wattwise_run_start_median_s": statistics.median(starts_run),
        "fixed_cost_s": statistics.median(starts_run) - statistics.median(starts_bare),
        "sampler_cpu_share_of_one_core_median": statistics.median(sampler) if sampler else None,
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"CPU-bound loop ~{seconds:.0f} s, {reps} interleaved repetitions (medians):")
    print(f"  untracked {result['untracked_median_s']:.3f} s, tracked "
          f"{result['tracked_median_s']:.3f} s, ratio {result['overhead_ratio']:.4f} "
          "(target < 1.01)")  # fmt: skip
    block = result["tracked_block_median_s"]
    print(f"  whole tracked block incl. run start and finish {block:.3f} s, "
          f"ratio {result['block_ratio']:.4f}")  # fmt: skip
    print(f"Fixed cost: python -c pass {result['bare_python_start_median_s']:.3f} s, under "
          f"wattwise run {result['wattwise_run_start_median_s']:.3f} s, difference "
          f"{result['fixed_cost_s']:.3f} s (target < 0.3 s)")  # fmt: skip
    share = result["sampler_cpu_share_of_one_core_median"]
    if share is not None:
        print(f"Sampler CPU: {share:.3%} of one core at 1 Hz (target < 1 %)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

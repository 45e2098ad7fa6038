"""What joining a job adds to a rank's start: job detection, election, the job record.

One command (about 10 s; ``--quick``: about 3 s):

    .venv/bin/python benchmarks/job_start.py
    .venv/bin/python benchmarks/job_start.py --quick --json out.json

The same run is started (``Run.start()``, with a real SQLite ledger and the meters this
machine selects, or ``--meters``) again and again, alternately outside a job and inside one
(``WATTWISE_JOB_ID`` set to a new id each time, so every start holds a first election and
creates its lock files, the costlier case); each run is finished before the next starts,
and only ``start()`` is timed. Medians of the two, and their difference, are printed.
Where RAPL is unreadable the CPU and DRAM come from the model meters, which are elected
the same way (one lock per device key).

Target (issue 11): election and job registration add under 50 ms to a rank's start.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
import warnings
from pathlib import Path

TARGET_MS = 50.0


def one_start(ledger: Path, meters: list[str] | None, job: str | None) -> tuple[float, bool]:
    """Seconds ``Run.start()`` took, and whether the run joined a job."""
    from wattwise.tracking import Run

    if job is None:
        os.environ.pop("WATTWISE_JOB_ID", None)
    else:
        os.environ["WATTWISE_JOB_ID"] = job
    run = Run("bench", store=str(ledger), meters=meters, region="FR", emit_warnings=False,
              diff=False)  # fmt: skip
    t0 = time.perf_counter()
    run.start()
    elapsed = time.perf_counter() - t0
    joined = "job" in run.record
    run.finish()
    return elapsed, joined


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="8 starts of each instead of 30")
    parser.add_argument("--meters", help="meter ids, comma-separated (default: selected)")
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    args = parser.parse_args()
    reps = 8 if args.quick else 30
    meters = args.meters.split(",") if args.meters else None
    warnings.simplefilter("ignore")
    with tempfile.TemporaryDirectory(prefix="wattwise-job-start-") as tmp:
        os.environ["WATTWISE_JOB_LOCK_DIR"] = str(Path(tmp) / "locks")
        ledger = Path(tmp) / "ledger.db"
        one_start(ledger, meters, None)  # warm-up: imports, ledger creation
        one_start(ledger, meters, "warm-up")
        plain: list[float] = []
        joined: list[float] = []
        for _ in range(reps):  # interleaved: drifting load hits both alike
            elapsed, in_job = one_start(ledger, meters, None)
            assert not in_job, "a run outside any job joined one: clean the environment"
            plain.append(elapsed)
            elapsed, in_job = one_start(ledger, meters, f"bench-{uuid.uuid4().hex}")
            assert in_job, "the run did not join its job"
            joined.append(elapsed)
    plain_ms = statistics.median(plain) * 1e3
    job_ms = statistics.median(joined) * 1e3
    added = job_ms - plain_ms
    result = {
        "repetitions": reps,
        "start_without_job_median_ms": plain_ms,
        "start_with_job_median_ms": job_ms,
        "added_median_ms": added,
        "target_ms": TARGET_MS,
        "python": sys.version.split()[0],
    }
    print(f"Run.start() over {reps} interleaved starts each (medians):")
    print(f"  outside a job {plain_ms:.1f} ms, in a job {job_ms:.1f} ms")
    print(f"  added by job detection, election and the job record: {added:+.1f} ms "
          f"(target < {TARGET_MS:.0f} ms)")  # fmt: skip
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0 if added < TARGET_MS else 1


if __name__ == "__main__":
    raise SystemExit(main())

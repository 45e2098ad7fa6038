"""What a tuning trial costs besides its objective: wall time, energy and CPU per trial.

One command (about a minute; ``--quick``: about 20 s):

    .venv/bin/python benchmarks/trial_overhead.py
    .venv/bin/python benchmarks/trial_overhead.py --quick --profile   # + where the CPU goes

Measured in a fresh git project in a temporary folder, with the meters wattwise picks on
this machine (interleaved repetitions, medians):

* **track**: a bare ``with wattwise.track(): pass`` (the baseline: a run's own fixed cost);
* **inline**: trials of an empty objective under ``wattwise.tune(..., executor="inline")``;
* **processes**: the same under ``executor="processes"`` with one worker process;
* **reference**: a CPU-bound loop of about ``--work-s`` seconds, tracked, so the fixed cost
  can be read against one short training (issue 12: trainings of about a second).

Per trial: the wall time between consecutive trial starts (the cycle a study pays per
trial, worker start-up left out), the trial run's recorded duration, energy and CPU
seconds (``cpu_time_s``: what the CPU share of its energy comes from), and the driver's
energy per trial (wattwise's work outside the trials: counted in the study total). Ratios
are against the bare track run of the same repetitions.

``--profile`` adds a cProfile breakdown of the inline trials (every thread: the caller's,
the sampler, the environment capture, the ledger writer), top functions by own time.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
import itertools
import json
import os
import pstats
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from run_capture import calibrate, work  # this folder: the calibrated CPU work of both

OBJECTIVE = """
def objective(trial):
    return trial.suggest_float("x", 0.0, 1.0)
"""


@contextlib.contextmanager
def project() -> Iterator[Path]:
    """A fresh git project with a ledger, as the working directory."""
    before = Path.cwd()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / ".wattwise").mkdir()
        (root / "search.py").write_text(OBJECTIVE)
        git = {**os.environ, "GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@example.org",
               "GIT_COMMITTER_NAME": "b", "GIT_COMMITTER_EMAIL": "b@example.org"}  # fmt: skip
        for cmd in (["git", "init", "-q"], ["git", "add", "search.py"],
                    ["git", "commit", "-q", "-m", "bench"]):  # fmt: skip
            subprocess.run(cmd, cwd=root, check=True, env=git, capture_output=True)
        os.environ["WATTWISE_STORE"] = str(root / ".wattwise" / "ledger.db")
        os.environ.setdefault("WATTWISE_REGION", "FR")
        os.chdir(root)
        try:
            yield root
        finally:
            os.chdir(before)


def _ledger() -> Any:
    from wattwise.store import get_store

    return get_store(os.environ["WATTWISE_STORE"], readonly=True)


def track_runs(n: int) -> list[dict[str, float]]:
    """``n`` bare tracked blocks: wall ms around the block, and what each run recorded."""
    import wattwise

    walls, ids = [], []
    for _ in range(n):
        t0 = time.perf_counter()
        with wattwise.track("bench-track", emit_warnings=False) as run:
            pass
        walls.append((time.perf_counter() - t0) * 1e3)
        ids.append(run.id)
    store = _ledger()
    try:
        records = [store.get_run(i) for i in ids]
    finally:
        store.close()
    return [
        {"wall_ms": w, "run_ms": r.duration_s * 1e3, "energy_j": r.energy_j,
         "cpu_ms": float(r.record.get("cpu_time_s") or 0.0) * 1e3}
        for w, r in zip(walls, records, strict=True)
    ]  # fmt: skip


def reference_run(n_iter: int) -> dict[str, float]:
    """One tracked CPU-bound loop (a short 'training'): its wall ms and energy."""
    import wattwise

    with wattwise.track("bench-reference", emit_warnings=False) as run:
        t0 = time.perf_counter()
        work(n_iter)
        wall = time.perf_counter() - t0
    return {"work_ms": wall * 1e3, "energy_j": run.result.energy_j}


def study(executor: str, n_trials: int) -> dict[str, Any]:
    """One study of an empty objective: per-trial figures and the driver's."""
    import wattwise

    objective: Any = "search.py:objective"
    if executor == "inline":
        from wattwise.tuning import load_objective

        objective = load_objective("search.py")
    t0 = time.perf_counter()
    result = wattwise.tune(
        objective, n_trials=n_trials, executor=executor, n_workers=1, progress=False,
        study_name=f"bench-{executor}", seed=0,
    )  # fmt: skip
    wall = time.perf_counter() - t0
    store = _ledger()
    try:
        runs = sorted(store.list_runs(study_id=result.study_id), key=lambda r: r.started_at)
        driver = store.get_run(result.study_id)
    finally:
        store.close()
    trials = [r for r in runs if r.id != result.study_id]
    starts = [r.started_at for r in trials]
    cycles = [(b - a) * 1e3 for a, b in itertools.pairwise(starts)]
    return {
        "wall_s": wall,
        "trials": [
            {
                "run_ms": r.duration_s * 1e3,
                "energy_j": r.energy_j,
                "cpu_ms": float(r.record.get("cpu_time_s") or 0.0) * 1e3,
            }
            for r in trials
        ],
        "cycle_ms": cycles,
        "driver_j_per_trial": driver.energy_j / max(1, len(trials)),
        "driver_cpu_ms_per_trial": float(driver.record.get("cpu_time_s") or 0.0)
        * 1e3
        / max(1, len(trials)),
        "study_j": result.spent.energy_j,
        # wattwise's own work outside the trials is the driver's: still in the study total
        "trials_plus_driver_j": sum(r.energy_j for r in trials) + driver.energy_j,
    }


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def summarise(rows: list[dict[str, float]], key: str) -> float | None:
    return _median([r[key] for r in rows])


@contextlib.contextmanager
def every_thread_profiled() -> Iterator[list[cProfile.Profile]]:
    """cProfile the calling thread and every thread started meanwhile, in CPU seconds."""
    profiles: list[cProfile.Profile] = []
    original = threading.Thread.run

    def run(self: threading.Thread) -> None:
        prof = cProfile.Profile(time.thread_time)  # CPU of this thread, not its waits
        profiles.append(prof)
        prof.enable()
        try:
            original(self)
        finally:
            prof.disable()

    threading.Thread.run = run  # type: ignore[method-assign]
    main = cProfile.Profile(time.thread_time)
    profiles.append(main)
    main.enable()
    try:
        yield profiles
    finally:
        main.disable()
        threading.Thread.run = original  # type: ignore[method-assign]


def profile_inline(n_trials: int, top: int) -> str:
    """Where the CPU of inline trials goes (all threads), as pstats text."""
    import wattwise
    from wattwise.tuning import load_objective

    objective = load_objective("search.py")
    with every_thread_profiled() as profiles:
        wattwise.tune(objective, n_trials=n_trials, executor="inline", progress=False,
                      study_name="bench-profile", seed=0)  # fmt: skip
    out = io.StringIO()
    stats = pstats.Stats(profiles[0], stream=out)
    for prof in profiles[1:]:
        with contextlib.suppress(TypeError):  # a thread that never ran code
            stats.add(prof)
    stats.strip_dirs().sort_stats("tottime").print_stats(top)
    stats.sort_stats("cumulative").print_stats(top)
    return out.getvalue()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer trials and repetitions")
    parser.add_argument("--profile", action="store_true", help="add a cProfile breakdown")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--work-s", type=float, default=1.0,
                        help="seconds of the reference CPU loop (default 1)")  # fmt: skip
    args = parser.parse_args()
    reps, n_trials = (2, 6) if args.quick else (3, 12)
    with project():
        import wattwise  # noqa: F401  (imports are not a trial's cost)

        n_iter = calibrate(args.work_s)
        study("inline", 2)  # warm-up: imports, Optuna, the first ledger
        track_rows: list[dict[str, float]] = []
        inline: list[dict[str, Any]] = []
        processes: list[dict[str, Any]] = []
        references: list[dict[str, float]] = []
        for _ in range(reps):  # interleaved: drifts in host load hit every mode alike
            track_rows += track_runs(n_trials)
            inline.append(study("inline", n_trials))
            processes.append(study("processes", n_trials))
            references.append(reference_run(n_iter))
        breakdown = profile_inline(n_trials, 25) if args.profile else None

    def per_trial(studies: list[dict[str, Any]]) -> dict[str, Any]:
        rows = [t for s in studies for t in s["trials"]]
        return {
            "cycle_ms": _median([c for s in studies for c in s["cycle_ms"]]),
            "run_ms": summarise(rows, "run_ms"),
            "energy_j": summarise(rows, "energy_j"),
            "cpu_ms": summarise(rows, "cpu_ms"),
            # CPU seconds come in clock ticks (10 ms): a run's figures are quantised, so
            # the mean over every trial shows small changes that a median hides
            "energy_mean_j": statistics.fmean(r["energy_j"] for r in rows),
            "cpu_mean_ms": statistics.fmean(r["cpu_ms"] for r in rows),
            "driver_j_per_trial": _median([s["driver_j_per_trial"] for s in studies]),
            "driver_cpu_ms_per_trial": _median([s["driver_cpu_ms_per_trial"] for s in studies]),
            # the study's total over its trials' and driver's ledger figures (1: all counted)
            "study_total_vs_parts": _median(
                [
                    s["study_j"] / s["trials_plus_driver_j"]
                    for s in studies
                    if s["trials_plus_driver_j"] > 0
                ]
            ),
        }

    base: dict[str, Any] = {
        k: summarise(track_rows, k) for k in ("wall_ms", "run_ms", "energy_j", "cpu_ms")
    }
    base["energy_mean_j"] = statistics.fmean(r["energy_j"] for r in track_rows)
    base["cpu_mean_ms"] = statistics.fmean(r["cpu_ms"] for r in track_rows)
    result: dict[str, Any] = {
        "repetitions": reps,
        "trials_per_study": n_trials,
        "track": base,
        "inline": per_trial(inline),
        "processes": per_trial(processes),
        "reference": {
            "work_ms": summarise(references, "work_ms"),
            "energy_j": summarise(references, "energy_j"),
        },
    }
    for mode in ("inline", "processes"):
        row = result[mode]
        row["energy_vs_track"] = (row["energy_j"] / base["energy_j"]) if base["energy_j"] else None
        row["cycle_vs_track_wall"] = row["cycle_ms"] / base["wall_ms"] if base["wall_ms"] else None
        ref_j = result["reference"]["energy_j"]
        row["energy_vs_reference"] = row["energy_j"] / ref_j if ref_j else None
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"{reps} interleaved repetitions, {n_trials} trials per study (medians):")
        print(f"  bare track():  wall {base['wall_ms']:.1f} ms, run {base['run_ms']:.1f} ms, "
              f"{base['energy_j']:.4f} J (mean {base['energy_mean_j']:.4f}), CPU "
              f"{base['cpu_ms']:.1f} ms (mean {base['cpu_mean_ms']:.1f})")  # fmt: skip
        for mode in ("inline", "processes"):
            row = result[mode]
            print(f"  {mode:<10} per trial: cycle {row['cycle_ms']:.1f} ms "
                  f"({row['cycle_vs_track_wall']:.2f}x track wall), run {row['run_ms']:.1f} ms, "
                  f"{row['energy_j']:.4f} J (mean {row['energy_mean_j']:.4f}; median "
                  f"{row['energy_vs_track']:.2f}x track), CPU {row['cpu_ms']:.1f} ms (mean "
                  f"{row['cpu_mean_ms']:.1f}); driver {row['driver_j_per_trial']:.4f} J and "
                  f"{row['driver_cpu_ms_per_trial']:.1f} ms CPU per trial; study total "
                  f"{row['study_total_vs_parts']:.3f}x trials + driver")  # fmt: skip
        ref = result["reference"]
        print(f"  reference: a {ref['work_ms']:.0f} ms CPU loop, tracked: {ref['energy_j']:.3f} J;"
              f" an empty trial is {result['inline']['energy_vs_reference']:.1%} of it inline, "
              f"{result['processes']['energy_vs_reference']:.1%} in a worker process")  # fmt: skip
    if breakdown is not None:
        print(breakdown, file=sys.stderr if args.json else sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())

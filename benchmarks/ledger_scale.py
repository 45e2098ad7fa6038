"""A team's year in one ledger: how long the reading commands take at 20,000 runs.

One command (a few minutes; ``--quick``: 2,000 runs and 400,000 metric rows, under a minute):

    .venv/bin/python benchmarks/ledger_scale.py
    .venv/bin/python benchmarks/ledger_scale.py --quick
    .venv/bin/python benchmarks/ledger_scale.py --store postgresql://localhost/bench

1. Build: a ledger export (JSON Lines) is generated (20,000 runs: tuning studies of
   150 trials, final runs, failed and crashed ones, from 8 users on 12 hosts over 12 months,
   each run with 200 metric points, so 4,000,000 metric rows, and 10 power samples) and
   loaded with ``wattwise ledger import`` (the same code as the CLI). The figures in it are
   synthetic (drawn from a seeded generator); only the shape and size of the ledger matter
   here, no figure is read as a measurement.
2. Time: each command runs as its own process (``python -m wattwise``, so import and
   start-up are included), ``--repeat`` times; the median is reported, the slowest, the
   median less the start-up of ``wattwise --version`` ("net"), and the median CPU time of
   the process ("cpu": user + system; steadier than wall time on a busy machine).
   ``--ledger URL`` times a ledger built before (``--workdir`` keeps it) without building.
   ``runs --limit N`` for N = 20, 200, 2000 checks that time grows no worse than linearly
   with the runs shown.

Targets (issue 10, "Scale"): ``footprint`` < 0.5 s and ``report --project`` < 5 s at
20,000 runs. ``--json FILE`` writes every figure.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

T0 = 1_735_689_600.0  # 2025-01-01T00:00:00Z: the synthetic year starts here
YEAR_S = 365 * 86400.0
USERS = [f"user{i}" for i in range(8)]
HOSTS = [f"gpu-node-{i:02d}" for i in range(12)]
TARGETS = {"footprint": 0.5, "report --project (html)": 5.0, "report --project (md)": 5.0}


def _shown(url: str) -> str:
    """The ledger's URL as printed: a password in it is never shown."""
    import urllib.parse

    parts = urllib.parse.urlsplit(url)
    if "://" not in url or parts.password is None:
        return url
    host = parts.netloc.rsplit("@", 1)[-1]
    user = parts.username or ""
    return urllib.parse.urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


def _run_columns() -> set[str]:
    """The run columns this wattwise's ledger has (``user``/``role`` once they exist)."""
    from wattwise.store import RunRecord

    return {f.name for f in dataclasses.fields(RunRecord)}


def generate(runs: int, metrics_per_run: int, seed: int = 0) -> Iterator[str]:
    """The lines of a ledger export: a header, then one line per run."""
    from wattwise.store import EXPORT_FORMAT as FORMAT
    from wattwise.store import EXPORT_VERSION as VERSION

    rng = random.Random(seed)
    columns = _run_columns()
    yield json.dumps({"format": FORMAT, "version": VERSION, "exported_at": time.time(),
                      "tool_version": "benchmark", "source": "synthetic", "runs": runs})
    made = 0
    while made < runs:
        user, host = rng.choice(USERS), rng.choice(HOSTS)
        start = T0 + rng.random() * (YEAR_S - 86400)
        if rng.random() < 0.75 and runs - made > 151:  # a study: a driver and 150 trials
            driver = uuid.UUID(int=rng.getrandbits(128)).hex
            yield _line(rng, driver, "study", "study", None, start, user, host, columns,
                        metrics_per_run, status="finished")  # fmt: skip
            for t in range(150):
                rid = uuid.UUID(int=rng.getrandbits(128)).hex
                status = "finished" if rng.random() < 0.9 else "failed"
                yield _line(rng, rid, f"trial-{t}", "trial", driver, start + 600 * t, user,
                            host, columns, metrics_per_run, status=status)  # fmt: skip
            made += 151
        else:
            rid = uuid.UUID(int=rng.getrandbits(128)).hex
            status = rng.choices(["finished", "failed", "crashed"], [0.85, 0.1, 0.05])[0]
            yield _line(rng, rid, f"train-{made}", "python", None, start, user, host, columns,
                        metrics_per_run, status=status)  # fmt: skip
            made += 1


def _line(
    rng: random.Random, rid: str, name: str, kind: str, study: str | None, start: float,
    user: str, host: str, columns: set[str], n_metrics: int, *, status: str,
) -> str:  # fmt: skip
    duration = rng.uniform(60, 7200)
    energy = duration * rng.uniform(80, 600)
    intensity = rng.choice([31.0, 380.0, 55.0])
    co2e = energy / 3.6e6 * intensity
    run: dict[str, Any] = {
        "id": rid, "name": name, "kind": kind, "status": status, "parent_id": None,
        "study_id": study if kind == "trial" else None, "started_at": start,
        "ended_at": start + duration, "heartbeat_at": start + duration,
        "duration_s": duration, "exit_code": 0 if status == "finished" else 1, "host": host,
        "pid": rng.randrange(1000, 99999), "energy_j": energy, "energy_band_j": energy * 0.1,
        "machine_energy_j": energy * 1.5, "co2e_g": co2e, "co2e_band_g": co2e * 0.1,
        "region": rng.choice(["FR", "DE", "SE"]),
        "tags": rng.sample(["baseline", "ablation", "resnet", "bert", "sweep"], 2),
        "params": {"lr": rng.choice([1e-4, 3e-4, 1e-3]), "batch": rng.choice([32, 64])},
        "record": {
            "intensity": {"g_per_kwh": intensity, "scope": "lifecycle", "dataset": "synthetic"},
            "pue": {"value": 1.0, "source": "synthetic", "applies_to": "own hardware"},
            "location": {"zone": "FR", "display_name": "synthetic", "how": "benchmark"},
        },
    }  # fmt: skip
    if "user" in columns:
        run["user"] = user
    if "role" in columns:
        run["role"] = {"trial": "trial", "study": "study"}.get(kind, "final")
    comps = [{
        "component": "gpu", "energy_j": energy, "machine_energy_j": energy * 1.5,
        "band_j": energy * 0.1, "method": "counter", "meter": "gpu-nvml",
        "source": "synthetic", "info": {},
    }]  # fmt: skip
    metrics = [[i // 2, "loss" if i % 2 == 0 else "accuracy", rng.random(), start + i]
               for i in range(n_metrics)]  # fmt: skip
    samples = [[10.0 * i, "gpu", 250.0, 2500.0 * i] for i in range(10)]
    return json.dumps({
        "type": "run", "run": run, "components": comps, "metrics": metrics, "samples": samples,
        "annotations": [], "artifacts": [], "reuse": [],
    })  # fmt: skip


def build(store_url: str, runs: int, metrics_per_run: int, folder: Path) -> dict[str, float]:
    """Generate the export, import it; seconds taken by each step."""
    export = folder / "synthetic.jsonl"
    t = time.perf_counter()
    with open(export, "w", encoding="utf-8") as handle:
        for line in generate(runs, metrics_per_run):
            handle.write(line + "\n")
    generated = time.perf_counter() - t
    t = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "wattwise", "--store", store_url, "ledger", "import", str(export)],
        capture_output=True, text=True,
    )  # fmt: skip
    if done.returncode != 0:
        msg = f"ledger import failed: {done.stderr.strip()}"
        raise SystemExit(msg)
    return {"generate_s": generated, "import_s": time.perf_counter() - t,
            "export_mb": export.stat().st_size / 1e6}  # fmt: skip


def _first_run_id(store_url: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "wattwise", "--store", store_url, "runs", "--limit", "1",
         "--json"], capture_output=True, text=True, check=True,
    )  # fmt: skip
    listed = json.loads(done.stdout)
    return str(listed[0]["id"])


def time_command(argv: list[str], repeat: int, timeout_s: float) -> dict[str, Any]:
    """Median and slowest wall time of ``python -m wattwise ARGV``, and the median CPU time
    (user + system) the process used: on a machine shared with other work the CPU time
    moves much less than the wall time."""
    import resource

    times = []
    cpus = []
    for _ in range(repeat):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t = time.perf_counter()
        try:
            done = subprocess.run(
                [sys.executable, "-m", "wattwise", *argv], capture_output=True, text=True,
                timeout=timeout_s,
            )  # fmt: skip
        except subprocess.TimeoutExpired:
            return {"median_s": None, "max_s": None, "error": f"did not finish in {timeout_s} s"}
        elapsed = time.perf_counter() - t
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
        if done.returncode != 0:
            err = (done.stderr.strip().splitlines() or ["?"])[-1]
            return {"median_s": None, "max_s": None, "error": err}
        times.append(elapsed)
    return {"median_s": statistics.median(times), "max_s": max(times),
            "cpu_median_s": statistics.median(cpus), "error": None}  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="2,000 runs instead of 20,000")
    parser.add_argument("--runs", type=int, help="number of runs (overrides --quick)")
    parser.add_argument("--metrics-per-run", type=int, default=200)
    parser.add_argument("--store", metavar="URL",
                        help="ledger to fill (must be empty; default: a new SQLite file)")
    parser.add_argument("--repeat", type=int, default=5, help="runs per command (median)")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per command")
    parser.add_argument("--json", metavar="FILE", help="write the figures as JSON")
    parser.add_argument("--workdir", metavar="DIR",
                        help="build in DIR and keep it (default: a temporary folder)")
    parser.add_argument("--ledger", metavar="URL",
                        help="time an existing ledger built before (with --workdir) instead "
                             "of building one")
    args = parser.parse_args()
    runs = args.runs or (2_000 if args.quick else 20_000)
    results: dict[str, Any] = {"runs": runs, "metric_rows": runs * args.metrics_per_run}
    with tempfile.TemporaryDirectory(prefix="wattwise-scale-") as tmp:
        folder = Path(args.workdir or tmp)
        folder.mkdir(parents=True, exist_ok=True)
        store = args.ledger or args.store or str(folder / "ledger.db")
        os.environ.pop("WATTWISE_STORE", None)
        if args.ledger:
            print(f"Timing the existing ledger {_shown(store)} (built before; --runs is not "
                  "checked)", flush=True)  # fmt: skip
        else:
            print(f"Building a ledger of {runs:,} runs, {runs * args.metrics_per_run:,} metric "
                  f"rows in {_shown(store)} ...", flush=True)  # fmt: skip
            results["build"] = build(store, runs, args.metrics_per_run, folder)
            print(f"  generated in {results['build']['generate_s']:.1f} s "
                  f"({results['build']['export_mb']:.0f} MB), imported in "
                  f"{results['build']['import_s']:.1f} s", flush=True)  # fmt: skip
        run_id = _first_run_id(store)
        out = folder / "report"
        commands = {
            "start-up (--version)": ["--version"],
            "runs --limit 20": ["runs", "--limit", "20"],
            "runs --limit 200": ["runs", "--limit", "200"],
            "runs --limit 2000": ["runs", "--limit", "2000"],
            "runs (default)": ["runs"],
            "show RUN": ["show", run_id],
            "footprint": ["footprint"],
            "footprint --by user": ["footprint", "--by", "user"],
            "footprint --by month": ["footprint", "--by", "month"],
            "report --project (html)": ["report", "--project", "-o", f"{out}.html"],
            "report --project (md)": ["report", "--project", "-o", f"{out}.md"],
        }
        timed: dict[str, Any] = {}
        print(f"{'command':<28}{'median':>10}{'slowest':>10}{'net':>9}{'cpu':>9}  "
              "target (on median)", flush=True)  # fmt: skip
        startup: float | None = None
        for label, argv in commands.items():
            figure = time_command(["--store", store, *argv], args.repeat, args.timeout)
            timed[label] = figure
            target = TARGETS.get(label)
            if figure["error"]:
                print(f"{label:<28}{'-':>10}{'-':>10}  {figure['error']}", flush=True)
                continue
            if startup is None:
                startup = figure["median_s"]
            # net: the median less the start-up of a process that does nothing (--version).
            figure["net_s"] = max(0.0, figure["median_s"] - startup)
            verdict = ""
            if target is not None:
                verdict = f"< {target:g} s " + ("met" if figure["median_s"] < target else "MISSED")
            print(f"{label:<28}{figure['median_s']:>9.2f}s{figure['max_s']:>9.2f}s"
                  f"{figure['net_s']:>8.2f}s{figure['cpu_median_s']:>8.2f}s  {verdict}",
                  flush=True)  # fmt: skip
        results["commands"] = timed
        for label in ("report --project (html)", "report --project (md)"):
            suffix = ".html" if "html" in label else ".md"
            path = Path(f"{out}{suffix}")
            if path.exists():
                timed[label]["output_kb"] = path.stat().st_size / 1e3
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())

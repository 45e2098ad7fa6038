"""N processes of one job on one host, each in ``wattwise.track()``: one measures the
host's CPU package, the job counts the counter once, and a killed measurer is replaced."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from jobs_support import ROUNDING_J, FakeRaplHost

from daemon_support import started
from wattwise.store import RunRecord, get_store

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="flock election on Linux")

RANK = """
import sys, time
from pathlib import Path
import wattwise
stop = Path(sys.argv[1])
with wattwise.track("rank", meters=["cpu-rapl"]) as run:
    print(run.id, flush=True)
    while not stop.exists():
        time.sleep(0.02)
"""


def _env(tmp_path: Path, rapl: FakeRaplHost, ledger: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WATTWISE_", "SLURM_"))}
    env.update(
        WATTWISE_JOB_ID="job-track", WATTWISE_HOST_ID="node-x", WATTWISE_RAPL_ROOT=str(rapl.root),
        WATTWISE_STORE=str(ledger), WATTWISE_REGION="FR", WATTWISE_INTERVAL_S="0.1",
        WATTWISE_FLUSH_S="0.1", WATTWISE_JOB_LOCK_DIR=str(tmp_path / "locks"),
        WATTWISE_CEILING_DIRECTORIES=str(tmp_path),
    )  # fmt: skip
    return env


def _runs(ledger: Path) -> dict[str, RunRecord]:
    store = get_store(str(ledger), readonly=True)
    try:
        return {r.id: r for r in store.list_runs()
                if r.record.get("job", {}).get("id") == "job-track"}  # fmt: skip
    finally:
        store.close()


def _wait_for(predicate: object, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_one_measurer_counts_the_host_once_and_a_loser_takes_over(tmp_path: Path) -> None:
    rapl = FakeRaplHost(tmp_path / "rapl", power_w=60.0).start()
    ledger = tmp_path / "ledger.db"
    stop = tmp_path / "stop"
    env = _env(tmp_path, rapl, ledger)
    argv = [sys.executable, "-c", RANK, str(stop)]
    procs = [
        subprocess.Popen(argv, env=env, text=True, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, start_new_session=True, cwd=tmp_path)
        for _ in range(3)
    ]
    with started(*procs):
        ids = [p.stdout.readline().strip() for p in procs if p.stdout is not None]
        assert all(len(i) == 32 for i in ids), [p.stderr.read() for p in procs if p.stderr]

        def measurers() -> list[str]:
            runs = _runs(ledger)
            return [i for i, r in runs.items()
                    if "cpu:node-x" in r.record.get("job", {}).get("measures", [])]  # fmt: skip

        _wait_for(lambda: len(_runs(ledger)) == 3 and len(measurers()) == 1, 120, "3 runs")
        first = measurers()[0]
        runs = _runs(ledger)
        for run in runs.values():  # everyone names the measurer
            job = run.record["job"]
            assert job["measured_by"] == {"cpu:node-x": first}, job
            assert run.host == "node-x"
        time.sleep(2.0)
        victim = procs[ids.index(first)]
        os.killpg(victim.pid, signal.SIGKILL)  # our own process group
        victim.wait(timeout=60)
        _wait_for(lambda: any(m != first for m in measurers()), 120, "a takeover")
        time.sleep(3.0)
        stop.write_text("")
        for proc in procs:
            if proc is not victim:
                assert proc.wait(timeout=120) == 0, proc.stderr.read() if proc.stderr else ""
    rapl.stop()

    runs = _runs(ledger)
    assert len(runs) == 3
    takers = [r for r in runs.values() if r.record["job"].get("takeovers")]
    successor = [r for r in takers
                 if any(t["from_run"] == first for t in r.record["job"]["takeovers"])]  # fmt: skip
    assert len(successor) == 1, [(r.id, r.record["job"]) for r in takers]
    heir = successor[0]
    (takeover,) = [t for t in heir.record["job"]["takeovers"] if t["from_run"] == first]
    assert takeover["device"] == "cpu:node-x"
    # The ranks stop in any order (a loaded machine spreads their ends out): the heir may end
    # first and the last rank take over from it. Never from a measurer still running.
    for run in takers:
        for later in run.record["job"]["takeovers"]:
            if later is not takeover:
                assert later["from_run"] == heir.id and run.id != heir.id, later
                assert heir.ended_at is not None and later["at"] >= heir.ended_at, later
    for run in runs.values():
        if run.id not in {r.id for r in takers} | {first}:
            cpu = [c for c in run.components if c.component == "cpu"]
            assert all(c.energy_j == 0.0 for c in cpu), "a loser counted the package"
    start = min(r.started_at for r in runs.values())
    end = max((r.ended_at or r.heartbeat_at or 0.0) for r in runs.values())
    increase = rapl.increase_j(start, end)
    counted = sum(r.energy_j or 0.0 for r in runs.values())
    assert counted <= increase + ROUNDING_J, (counted, increase)
    # Nearly all of it, from the first measurer's start to its successor's end, but for the
    # gap nobody counts by design: from the dead measurer's last flush to the takeover. The
    # runs' start-ups and the gap stretch with the machine's load, so both come from the
    # times the runs recorded, not from an expected share of the whole.
    dead = runs[first]
    measured = rapl.increase_j(dead.started_at, heir.ended_at or heir.heartbeat_at or 0.0)
    assert dead.heartbeat_at is not None
    gap = rapl.increase_j(dead.heartbeat_at, takeover["at"])
    assert counted >= 0.95 * (measured - gap), (counted, measured, gap)

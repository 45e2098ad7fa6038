"""``show JOB`` and ``runs`` over records the tracker wrote: two real processes of one job on
one (fake) host, each in ``wattwise.track()`` with a fake RAPL counter. The job view must
agree with the records (one measurer of the package, no disagreement warned about) and
with the footprint."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_support import call

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


@contextlib.contextmanager
def fake_rapl(root: Path, power_w: float) -> Iterator[Path]:
    """A powercap tree whose package counter a thread advances at ``power_w``."""
    zone = root / "intel-rapl:0"
    zone.mkdir(parents=True)
    (zone / "name").write_text("package-0\n")
    (zone / "max_energy_range_uj").write_text("262143328850\n")
    counter = zone / "energy_uj"
    stop = threading.Event()

    def advance() -> None:
        value, last = 1_000_000_000, time.monotonic()
        while True:
            tmp = counter.with_suffix(".tmp")
            tmp.write_text(f"{value}\n")
            os.replace(tmp, counter)
            if stop.wait(0.02):
                return
            now = time.monotonic()
            value += int(power_w * (now - last) * 1e6)
            last = now

    thread = threading.Thread(target=advance, daemon=True)
    thread.start()
    while not counter.exists():
        time.sleep(0.01)
    try:
        yield root
    finally:
        stop.set()
        thread.join()


def test_the_job_view_of_records_the_tracker_wrote(tmp_path: Path, isolated_project: Path) -> None:
    stop = tmp_path / "stop"
    procs: list[subprocess.Popen[str]] = []
    with fake_rapl(tmp_path / "rapl", power_w=50.0) as rapl:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("WATTWISE_", "SLURM_"))}
        env.update(
            WATTWISE_JOB_ID="job-live", WATTWISE_HOST_ID="node-x",
            WATTWISE_RAPL_ROOT=str(rapl), WATTWISE_REGION="FR", WATTWISE_INTERVAL_S="0.1",
            WATTWISE_FLUSH_S="0.2", WATTWISE_JOB_LOCK_DIR=str(tmp_path / "locks"),
            WATTWISE_CEILING_DIRECTORIES=str(tmp_path), WORLD_SIZE="2",
        )  # fmt: skip
        try:
            for rank in (0, 1):
                procs.append(subprocess.Popen(
                    [sys.executable, "-c", RANK, str(stop)], cwd=isolated_project, text=True,
                    env={**env, "RANK": str(rank), "LOCAL_RANK": str(rank)},
                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
                ))  # fmt: skip
            ids = [p.stdout.readline().strip() for p in procs if p.stdout is not None]
            assert all(len(i) == 32 for i in ids), [p.stderr.read() for p in procs if p.stderr]
            time.sleep(1.5)
            stop.write_text("")
            for proc in procs:
                assert proc.wait(timeout=30) == 0, proc.stderr.read() if proc.stderr else ""
        finally:
            for proc in procs:  # only what this test started, by its own process group
                if proc.poll() is None:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(timeout=10)
                for stream in (proc.stdout, proc.stderr):
                    if stream is not None:
                        stream.close()
    job = json.loads(call("show", "--job", "job-live", "--json").out)
    assert job["status"] == "finished" and job["runs"] == 2 and job["rank_count"] == 2
    assert job["warnings"] == [], job["warnings"]
    (device,) = [d for d in job["devices"] if d["key"] == "cpu:node-x"]
    # One measurer; two when the other rank outlived it by a sample and took over (a
    # takeover, not a disagreement: no warning above).
    assert 1 <= len(device["measured_by"]) <= 2 and set(device["measured_by"]) <= set(ids)
    assert device["energy_j"] > 0
    assert job["energy_j"] <= 50.0 * (job["duration_s"] + 0.1)  # the counter's rise, at most
    runs = json.loads(call("runs", "--json").out)
    assert len(runs) == 1 and runs[0]["kind"] == "job" and set(runs[0]["run_ids"]) == set(ids)
    assert runs[0]["energy_j"] == pytest.approx(job["energy_j"])
    footprint = json.loads(call("footprint", "--json").out)
    assert footprint["total"]["energy_j"] == pytest.approx(job["energy_j"])
    assert job["energy_j"] == pytest.approx(device["energy_j"], rel=0.01)

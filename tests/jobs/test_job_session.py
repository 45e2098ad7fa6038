"""A run's part in its job, on a real Sampler: shares fixed by the election, a rank's own
GPU, takeover counted from the next interval, SLURM's partial node, failures, ranks found
below a node wrapper."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from wattwise.meters import NvmlMeter
from wattwise.testing import FakeMeter, ManualClock
from wattwise.testing.fake_nvml import FakeGpu, FakeNvml
from wattwise.tracking._job_session import (
    OTHER_RANK,
    RankWatcher,
    read_rank_environ,
    start_job,
)
from wattwise.tracking._proctree import ProcessTree
from wattwise.tracking._sampler import Sampler

UUID_A = "GPU-aaaaaaaa-0000-0000-0000-000000000000"
UUID_B = "GPU-bbbbbbbb-0000-0000-0000-000000000000"


def _sampler(clock: ManualClock) -> Sampler:
    nvml = FakeNvml([FakeGpu(uuid=UUID_A, energy_mj=lambda t: int(100_000 * t)),
                     FakeGpu(uuid=UUID_B, energy_mj=lambda t: int(200_000 * t))],
                    clock=clock)  # fmt: skip
    meters = [FakeMeter({"cpu:0": 50.0, "dram:0": 5.0}, clock=clock),
              NvmlMeter(nvml=nvml, clock=clock)]  # fmt: skip
    return Sampler(meters, ProcessTree(os.getpid()), strict=True, warn=_no_warning)


def _no_warning(kind: str, text: str) -> None:
    msg = f"unexpected warning {kind}: {text}"
    raise AssertionError(msg)


def _env(tmp_path: Path, **more: str) -> dict[str, str]:
    return {"WATTWISE_JOB_ID": "job-s", "WATTWISE_HOST_ID": "h",
            "WATTWISE_JOB_LOCK_DIR": str(tmp_path / "locks"), **more}  # fmt: skip


def test_ranks_split_devices_and_a_takeover_counts_from_the_next_interval(
    tmp_path: Path,
) -> None:
    clock = ManualClock()
    one, two = _sampler(clock), _sampler(clock)
    first, rec1 = start_job("run-1", one, command=None, warn=_no_warning,
                            environ=_env(tmp_path, LOCAL_RANK="1", RANK="1"))  # fmt: skip
    second, rec2 = start_job("run-2", two, command=None, warn=_no_warning,
                             environ=_env(tmp_path, LOCAL_RANK="0", RANK="0"))  # fmt: skip
    assert first is not None and second is not None and rec1 is not None and rec2 is not None
    assert rec1["measures"] == ["cpu:h", "dram:h", f"gpu:{UUID_B}"]
    assert rec1["other_ranks_gpus"] == ["gpu:0"]
    assert rec2["measures"] == [f"gpu:{UUID_A}"]
    assert rec2["measured_by"] == {"cpu:h": "run-1", "dram:h": "run-1", f"gpu:{UUID_A}": "run-2"}
    assert (rec1["rank"], rec1["local_rank"], rec1["role"]) == (1, 1, "rank")
    assert one.gpu_modes["gpu:0"] == OTHER_RANK

    clock.t += 10.0
    for sampler, session in ((one, first), (two, second)):
        sampler.sample()
        session.tick()
    assert one.energy == pytest.approx({"cpu": 500.0, "dram": 50.0, "gpu": 2000.0})
    assert two.energy == pytest.approx({"cpu": 0.0, "dram": 0.0, "gpu": 1000.0})
    assert one.machine["gpu"] == pytest.approx(3000.0)  # the machine's view stays whole
    comps = {c.component: c for c in one.components()}
    assert comps["cpu"].info["attribution"].startswith("job: the measurer counts")

    first.close()  # the measurer ends (a dead process drops its locks the same way)
    clock.t += 10.0
    two.sample()
    assert second.tick() is True
    assert two.energy["cpu"] == 0.0  # the interval of the takeover belongs to nobody
    clock.t += 10.0
    two.sample()
    second.tick()
    assert two.energy["cpu"] == pytest.approx(500.0)
    rec = second.record()
    assert rec["measures"] == ["cpu:h", "dram:h", f"gpu:{UUID_A}"]
    assert [t["device"] for t in rec["takeovers"]] == ["cpu:h", "dram:h"]
    assert rec["takeovers"][0]["from_run"] == "run-1"
    second.close()


def test_slurm_partial_node_counts_its_cpu_fraction(tmp_path: Path) -> None:
    node = psutil.cpu_count(logical=True) or 1
    if node < 2:
        pytest.skip("needs a machine with at least 2 CPUs to hold part of it")
    clock = ManualClock()
    sampler = _sampler(clock)
    env = {"SLURM_JOB_ID": "77", "SLURM_STEP_ID": "0", "SLURM_CPUS_ON_NODE": "1",
           "WATTWISE_HOST_ID": "h", "WATTWISE_JOB_LOCK_DIR": str(tmp_path / "l")}  # fmt: skip
    session, rec = start_job("run-s", sampler, command=None, warn=_no_warning, environ=env)
    assert session is not None and rec is not None
    assert rec["id"] == "slurm:77.0" and rec["slurm"]["allocation"]["cpus_on_node"] == 1
    assert f"1 of this node's {node} CPUs" in rec["attribution"]
    assert rec["shares"]["cpu:h"] == pytest.approx(1 / node)
    assert rec["shares"][f"gpu:{UUID_A}"] == 1.0
    clock.t += 4.0
    sampler.sample()
    assert sampler.energy["cpu"] == pytest.approx(200.0 / node)
    assert sampler.energy["gpu"] == pytest.approx(1200.0)
    session.close()


def test_outside_a_job_nothing_changes(tmp_path: Path) -> None:
    sampler = _sampler(ManualClock())
    assert start_job("r", sampler, command=None, warn=_no_warning, environ={}) == (None, None)
    assert sampler.fixed_shares == {}


def test_a_failed_election_measures_standalone_with_one_warning(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    said: list[tuple[str, str]] = []
    sampler = _sampler(ManualClock())
    env = {"WATTWISE_JOB_ID": "j", "WATTWISE_JOB_LOCK_DIR": str(blocker / "locks")}
    session, rec = start_job("r", sampler, command=None,
                             warn=lambda k, t: said.append((k, t)), environ=env)  # fmt: skip
    assert session is None and rec is not None
    assert rec["standalone"] is True and rec["measures"] == [] and rec["id"] == "j"
    assert len(said) == 1 and "standalone run" in said[0][1]
    assert sampler.fixed_shares == {}


def test_a_wrapper_finds_ranks_among_its_descendants() -> None:
    assert read_rank_environ(os.getpid()) is None or "RANK" in os.environ
    env = {**os.environ, "RANK": "5", "LOCAL_RANK": "1", "WORLD_SIZE": "8",
           "TORCHELASTIC_RUN_ID": "rid", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "1"}
    # it outlives any deadline below: the test kills it once seen
    burn = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.3: pass\n" \
           "time.sleep(300)"  # fmt: skip
    child = subprocess.Popen([sys.executable, "-c", burn], env=env, start_new_session=True)
    try:
        watcher = RankWatcher(None)
        tree = ProcessTree(os.getpid())
        deadline = time.monotonic() + 120  # 0.3 s of CPU: late on a loaded machine
        while not watcher.ranks or watcher.ranks[5]["cpu_s"] < 0.25:
            assert time.monotonic() < deadline, "the rank was never seen"
            time.sleep(0.1)
            watcher.scan(tree.processes())
        ranks = watcher.record(node_energy_j=100.0)
        assert [(r["rank"], r["local_rank"], r["world_size"], r["pid"]) for r in ranks] == [
            (5, 1, 8, child.pid)]
        assert ranks[0]["share"] == 1.0 and ranks[0]["energy_j"] == 100.0
        assert watcher.facts["TORCHELASTIC_RUN_ID"] == "rid"
    finally:
        child.kill()  # our own child, by its pid
        child.wait(timeout=10)


def test_a_rank_seen_before_its_exec_is_found_after_it() -> None:
    # torchrun forks, then execs the worker with RANK set: a scan between the two reads the
    # parent's environment. The fork here waits for the test's word before it execs.
    go_r, go_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: wait for the word, then become a rank
        try:
            os.close(go_w)
            os.read(go_r, 1)
            env = {**os.environ, "RANK": "2", "LOCAL_RANK": "0", "WORLD_SIZE": "4"}
            os.execve(sys.executable, [sys.executable, "-c", "import time; time.sleep(300)"], env)
        finally:
            os._exit(1)
    os.close(go_r)
    try:
        watcher = RankWatcher(None)
        tree = ProcessTree(os.getpid())
        watcher.scan(tree.processes())  # before the exec: no rank variables yet
        assert pid in {p.pid for p in tree.processes()} and not watcher.ranks
        os.write(go_w, b"x")
        deadline = time.monotonic() + 120
        while 2 not in watcher.ranks:
            assert time.monotonic() < deadline, "the rank was never seen after its exec"
            time.sleep(0.1)
            watcher.scan(tree.processes())
        assert watcher.ranks[2]["local_rank"] == 0 and watcher.ranks[2]["pid"] == pid
    finally:
        os.close(go_w)
        os.kill(pid, 9)  # our own child, by its pid
        os.waitpid(pid, 0)

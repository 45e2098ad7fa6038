"""A real gloo (CPU) torch.distributed job, 2 nodes x 2 ranks on 127.0.0.1, each node under
``wattwise run -- torchrun ...`` with its own host id and fake RAPL counter, one ledger.

The job must be one job of 4 ranks on 2 hosts, and each host's counter counted once: the
job's energy within 5 % of the two counters' increase over the job, never above it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from jobs_support import ROUNDING_J, FakeRaplHost

from daemon_support import free_port, started
from wattwise.store import RunRecord, get_store

torch = pytest.importorskip("torch")
dist = pytest.importorskip("torch.distributed")
NO_GLOO = not dist.is_available() or not dist.is_gloo_available()
pytestmark = [
    pytest.mark.skipif(sys.platform != "linux", reason="flock election and /proc on Linux"),
    pytest.mark.skipif(NO_GLOO, reason="this torch has no gloo backend"),
]

TRAIN = """
import os, time
import torch
import torch.distributed as dist
dist.init_process_group("gloo")
rank = dist.get_rank()
def work():
    t = time.monotonic()
    while True:  # about 2 s of CPU work and allreduce; rank 0 says when to stop
        y = torch.randn(128, 128) @ torch.randn(128, 128)
        done = torch.tensor([float(rank == 0 and time.monotonic() - t > 2.0)])
        dist.all_reduce(done)
        if done.item() > 0:
            break
if os.environ.get("NESTED") == "1" and rank == 3:
    import wattwise
    with wattwise.track("rank-3", meters=["cpu-rapl"]) as run:
        work()
else:
    work()
dist.destroy_process_group()
"""


def _ledger_runs(ledger: Path, job_id: str) -> list[RunRecord]:
    store = get_store(str(ledger), readonly=True)
    try:
        return [r for r in store.list_runs() if r.record.get("job", {}).get("id") == job_id]
    finally:
        store.close()


def test_two_nodes_two_ranks_each_count_each_host_once(tmp_path: Path) -> None:
    wattwise = shutil.which("wattwise", path=str(Path(sys.executable).parent))
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent))
    if wattwise is None or torchrun is None:
        pytest.skip("wattwise or torchrun is not installed next to this Python")
    script = tmp_path / "train.py"
    script.write_text(TRAIN)
    ledger = tmp_path / "ledger.db"
    port, rdzv_id = free_port(), uuid.uuid4().hex[:12]
    hosts = {name: FakeRaplHost(tmp_path / f"rapl-{name}", power_w=w).start()
             for name, w in (("node-a", 40.0), ("node-b", 70.0))}  # fmt: skip
    base = {k: v for k, v in os.environ.items()
            if not k.startswith(("WATTWISE_", "SLURM_", "TORCHELASTIC_"))}  # fmt: skip
    base.update(
        WATTWISE_STORE=str(ledger), WATTWISE_REGION="FR", WATTWISE_METERS="cpu-rapl",
        WATTWISE_INTERVAL_S="0.25", WATTWISE_FLUSH_S="0.5", NESTED="1",
        WATTWISE_JOB_LOCK_DIR=str(tmp_path / "locks"), WATTWISE_CEILING_DIRECTORIES=str(tmp_path),
        OMP_NUM_THREADS="1", GLOO_SOCKET_IFNAME="lo",
    )  # fmt: skip
    procs = []
    for node_rank, (name, rapl) in enumerate(hosts.items()):
        env = {**base, "WATTWISE_HOST_ID": name, "WATTWISE_RAPL_ROOT": str(rapl.root)}
        argv = [wattwise, "run", "--no-diff", "--", torchrun, "--nnodes", "2",
                "--node-rank", str(node_rank), "--nproc-per-node", "2",
                "--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.1:{port}",
                "--rdzv-id", rdzv_id, str(script)]  # fmt: skip
        procs.append(subprocess.Popen(argv, env=env, cwd=tmp_path, text=True,
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                      start_new_session=True))  # fmt: skip
    try:
        with started(*procs):
            outputs = []
            for proc in procs:
                out, _ = proc.communicate(timeout=90)
                outputs.append(out)
            assert [p.returncode for p in procs] == [0, 0], "\n".join(outputs)
    finally:
        for rapl in hosts.values():
            rapl.stop()

    job_id = f"torchrun:{rdzv_id}@127.0.0.1:{port}"
    runs = _ledger_runs(ledger, job_id)
    nodes = [r for r in runs if r.parent_id is None]
    nested = [r for r in runs if r.parent_id is not None]
    assert len(nodes) == 2, [(r.name, r.parent_id) for r in runs]
    assert {r.host for r in nodes} == {"node-a", "node-b"}
    ranks = {e["rank"]: e for r in nodes for e in r.record["job"]["ranks"]}
    assert sorted(ranks) == [0, 1, 2, 3]
    for node in nodes:
        job = node.record["job"]
        assert job["role"] == "node" and job["world_size"] == 4
        assert job["measures"] == [f"cpu:{node.host}"]
        assert job["measured_by"] == {f"cpu:{node.host}": node.id}
        assert {e["local_rank"] for e in job["ranks"]} == {0, 1}
        assert abs(sum(e["share"] for e in job["ranks"]) - 1.0) < 1e-9
        assert all(e["cpu_s"] > 0 for e in job["ranks"])
        assert job["torchelastic"]["TORCHELASTIC_RUN_ID"] == rdzv_id

    # A rank's own track() under the wrapper is a nested run of the same job that loses
    # the host's election: it counts nothing, and names the node's run as the measurer.
    assert len(nested) == 1
    inner = nested[0]
    node_of_inner = next(r for r in nodes if r.id == inner.parent_id)
    assert inner.record["job"]["measures"] == []
    assert inner.record["job"]["measured_by"] == {f"cpu:{inner.host}": node_of_inner.id}
    assert inner.record["job"]["rank"] == 3 and inner.energy_j == 0.0

    total_counted = 0.0
    total_increase = 0.0
    for node in nodes:
        assert node.ended_at is not None
        increase = hosts[node.host].increase_j(node.started_at, node.ended_at)
        assert 0 < node.energy_j <= increase + ROUNDING_J, (node.host, node.energy_j, increase)
        assert node.energy_j >= 0.95 * increase, (node.host, node.energy_j, increase)
        total_counted += node.energy_j
        total_increase += increase
    job_energy = sum(r.energy_j for r in runs if r.parent_id is None)
    assert job_energy == pytest.approx(total_counted)
    assert 0.95 * total_increase <= job_energy <= total_increase + ROUNDING_J

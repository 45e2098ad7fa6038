"""Job identity: which job, host and rank a run is, from the environment and torchrun's
arguments; device keys and which GPU is a rank's."""

from __future__ import annotations

import socket

import pytest

from wattwise.tracking._job import (
    JobIdentity,
    detect_job,
    device_key,
    host_id,
    job_child_environ,
    rank_gpus,
    torchrun_args,
    visible_gpus,
)

TORCHRUN_RANK = {
    "TORCHELASTIC_RUN_ID": "none", "MASTER_ADDR": "10.0.0.7", "MASTER_PORT": "41234",
    "RANK": "3", "LOCAL_RANK": "1", "WORLD_SIZE": "4", "GROUP_RANK": "1",
}  # fmt: skip


def test_outside_any_job_there_is_no_job() -> None:
    assert detect_job({}) is None
    assert detect_job({"RANK": "0", "WORLD_SIZE": "2"}) is None  # ranks alone are no job id


def test_host_id_override_and_default() -> None:
    assert host_id({"WATTWISE_HOST_ID": " node-a "}) == "node-a"
    assert host_id({"WATTWISE_HOST_ID": "  "}) == socket.gethostname()
    assert host_id({}) == socket.gethostname()


def test_user_job_id_wins_and_keeps_rank_facts() -> None:
    job = detect_job({**TORCHRUN_RANK, "WATTWISE_JOB_ID": "exp-42", "WATTWISE_HOST_ID": "h1"})
    assert job == JobIdentity(id="exp-42", source="user", host="h1", rank=3, local_rank=1,
                              world_size=4, node_rank=1)  # fmt: skip


def test_a_wrapper_passes_its_job_and_source_to_its_ranks() -> None:
    wrapper = detect_job({"WATTWISE_HOST_ID": "h1"},
                         ["torchrun", "--rdzv-id", "j9", "--rdzv-endpoint", "n0:29400",
                          "--nnodes", "2", "--nproc-per-node", "2", "train.py"])  # fmt: skip
    assert wrapper is not None
    child = detect_job({**TORCHRUN_RANK, **wrapper.child_environ()})
    assert child is not None
    assert (child.id, child.source, child.host) == ("torchrun:j9@n0:29400", "torchrun", "h1")
    assert (child.rank, child.local_rank, child.node_wrapper) == (3, 1, False)


def test_torchrun_rank_id_uses_run_id_and_master() -> None:
    job = detect_job(TORCHRUN_RANK)
    assert job is not None
    assert (job.id, job.source) == ("torchrun:none@10.0.0.7:41234", "torchrun")
    assert (job.rank, job.local_rank, job.world_size, job.node_rank) == (3, 1, 4, 1)


def test_slurm_comes_before_torchrun_and_gives_rank_fallbacks() -> None:
    env = {"SLURM_JOB_ID": "812", "SLURM_STEP_ID": "0", "SLURM_PROCID": "5",
           "SLURM_LOCALID": "1", "SLURM_NTASKS": "8", "SLURM_NODEID": "2",
           "SLURM_CPUS_ON_NODE": "4"}  # fmt: skip
    job = detect_job(env)
    assert job is not None
    assert (job.id, job.source) == ("slurm:812.0", "slurm")
    assert (job.rank, job.local_rank, job.world_size, job.node_rank) == (5, 1, 8, 2)
    assert job.slurm is not None and job.slurm["allocation"]["cpus_on_node"] == 4
    both = detect_job({**env, **TORCHRUN_RANK})
    assert both is not None and both.id == "slurm:812.0"
    assert (both.rank, both.local_rank) == (3, 1)  # torch's own variables first


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        pytest.param(["torchrun", "--nnodes", "2", "--node-rank", "1", "--nproc-per-node", "2",
                      "--rdzv-backend", "c10d", "--rdzv-endpoint", "127.0.0.1:29400",
                      "--rdzv-id", "abc", "train.py", "--rdzv-id", "not-ours"],
                     {"nnodes": "2", "node_rank": "1", "nproc_per_node": "2",
                      "rdzv_backend": "c10d", "rdzv_endpoint": "127.0.0.1:29400",
                      "rdzv_id": "abc"}, id="dashes"),
        pytest.param(["/usr/bin/torchrun", "--nnodes=2", "--node_rank=0", "--nproc_per_node=4",
                      "--rdzv_endpoint=h:1", "--rdzv_id=x", "--max-restarts", "3", "t.py"],
                     {"nnodes": "2", "node_rank": "0", "nproc_per_node": "4",
                      "rdzv_endpoint": "h:1", "rdzv_id": "x"}, id="underscores-equals"),
        pytest.param(["python", "-u", "-m", "torch.distributed.run", "--standalone",
                      "--nproc-per-node", "2", "t.py"],
                     {"standalone": "1", "nproc_per_node": "2"}, id="python-m"),
        pytest.param(["torchrun", "--no-python", "--nproc-per-node", "2", "bash", "-c", "x"],
                     {"nproc_per_node": "2"}, id="flag-then-program"),
        pytest.param(["python", "train.py", "-m", "torch.distributed.run"], None, id="not-it"),
        pytest.param(["bash", "-c", "torchrun"], None, id="shell"),
    ],
)
def test_torchrun_arguments(argv: list[str], expected: dict[str, str] | None) -> None:
    assert torchrun_args(argv) == expected


def test_torchrun_wrapper_identity() -> None:
    argv = ["torchrun", "--nnodes", "2", "--node-rank", "1", "--nproc-per-node", "2",
            "--rdzv-backend", "c10d", "--rdzv-endpoint", "127.0.0.1:29400", "--rdzv-id", "abc",
            "train.py"]  # fmt: skip
    job = detect_job({"WATTWISE_HOST_ID": "node-b", "RANK": "9"}, argv)
    assert job is not None
    assert (job.id, job.source, job.host) == ("torchrun:abc@127.0.0.1:29400", "torchrun",
                                              "node-b")  # fmt: skip
    assert job.node_wrapper and job.rank is None and job.local_rank is None
    assert (job.world_size, job.node_rank) == (4, 1)
    default_id = detect_job({}, ["torchrun", "--rdzv-endpoint", "h:5", "--nnodes", "1:4", "t"])
    assert default_id is not None and default_id.id == "torchrun:none@h:5"
    assert default_id.world_size == 4  # the largest node count times one process


def test_single_node_torchrun_gets_an_id_of_its_own() -> None:
    one = detect_job({"WATTWISE_HOST_ID": "h"}, ["torchrun", "--nproc-per-node", "4", "t.py"])
    alone = detect_job({"WATTWISE_HOST_ID": "h"}, ["torchrun", "--standalone", "t.py"])
    assert one is not None and alone is not None
    assert one.id.startswith("torchrun:local@h:") and one.id == alone.id  # same wrapper pid


def test_ray_only_when_already_imported(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys
    import types

    monkeypatch.delitem(sys.modules, "ray", raising=False)
    assert detect_job({}) is None
    fake = types.ModuleType("ray")
    fake.is_initialized = lambda: True  # type: ignore[attr-defined]
    fake.get_runtime_context = lambda: types.SimpleNamespace(  # type: ignore[attr-defined]
        get_job_id=lambda: "02000000")
    monkeypatch.setitem(sys.modules, "ray", fake)
    job = detect_job({"WATTWISE_HOST_ID": "h"})
    assert job is not None and (job.id, job.source) == ("ray:02000000", "ray")
    fake.is_initialized = lambda: False  # type: ignore[attr-defined]
    assert detect_job({}) is None


UUIDS = {0: "GPU-aaaa-0", 1: "GPU-bbbb-1", 2: "GPU-cccc-2", 3: None}


@pytest.mark.parametrize(
    ("cvd", "expected"),
    [
        pytest.param(None, [0, 1, 2, 3], id="unset"),
        pytest.param("2,0", [2, 0], id="indices"),
        pytest.param("GPU-cccc,GPU-aaaa-0", [2, 0], id="uuid-prefixes"),
        pytest.param("1,-1,2", [1], id="stops-at-invalid"),
        pytest.param("MIG-xyz", [], id="mig"),
        pytest.param("", [], id="none"),
    ],
)
def test_visible_gpus(cvd: str | None, expected: list[int]) -> None:
    env = {} if cvd is None else {"CUDA_VISIBLE_DEVICES": cvd}
    assert visible_gpus(env, UUIDS) == expected


def test_a_rank_measures_its_local_rank_gpu() -> None:
    rank1 = JobIdentity(id="j", source="user", host="h", local_rank=1)
    assert rank_gpus(rank1, {"CUDA_VISIBLE_DEVICES": "2,0"}, UUIDS) == [0]
    assert rank_gpus(rank1, {"CUDA_VISIBLE_DEVICES": "GPU-bbbb"}, UUIDS) == [1]  # its only one
    assert rank_gpus(rank1, {"CUDA_VISIBLE_DEVICES": "3,4"}, UUIDS) == [3]
    out_of_range = JobIdentity(id="j", source="user", host="h", local_rank=7)
    assert rank_gpus(out_of_range, {}, UUIDS) == []
    node = JobIdentity(id="j", source="torchrun", host="h", node_wrapper=True, local_rank=1)
    assert rank_gpus(node, {"CUDA_VISIBLE_DEVICES": "0,1"}, UUIDS) == [0, 1]


def test_device_keys() -> None:
    assert device_key("cpu:1", "node-a", UUIDS) == "cpu:node-a"
    assert device_key("dram:0", "node-a", UUIDS) == "dram:node-a"
    assert device_key("gpu:1", "node-a", UUIDS) == "gpu:GPU-bbbb-1"
    assert device_key("gpu:3", "node-a", UUIDS) == "gpu:node-a/3"
    assert device_key("npu:0", "node-a", UUIDS) == "npu:node-a/0"


def test_what_a_wrapper_passes_to_its_command() -> None:
    record = {"job": {"id": "slurm:9.0", "source": "slurm", "host": "n1"}}
    assert job_child_environ(record) == {"WATTWISE_JOB_ID": "slurm:9.0",
                                         "WATTWISE_JOB_SOURCE": "slurm",
                                         "WATTWISE_HOST_ID": "n1"}  # fmt: skip
    assert job_child_environ({}) == {}
    assert job_child_environ({"job": {"id": None}}) == {}

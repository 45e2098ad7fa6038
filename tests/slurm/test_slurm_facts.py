"""SLURM identity and facts from the environment SLURM gives a task (pure functions)."""

from __future__ import annotations

import pytest

from wattwise.tracking._slurm import (
    expand_cpus_per_node,
    expand_hostlist,
    slurm_facts,
    slurm_job_id,
)

# What `srun --ntasks 2` inside `sbatch -p debug -N 2 --mem 4G` sets for rank 1 (names and
# shapes from `man srun`, OUTPUT ENVIRONMENT VARIABLES, Slurm 22.05).
SRUN_RANK1 = {
    "SLURM_JOB_ID": "812",
    "SLURM_JOBID": "812",
    "SLURM_STEP_ID": "0",
    "SLURM_STEPID": "0",
    "SLURM_JOB_NAME": "train",
    "SLURM_CLUSTER_NAME": "hpc",
    "SLURM_JOB_PARTITION": "debug",
    "SLURM_JOB_ACCOUNT": "ml",
    "SLURM_JOB_NODELIST": "gpu[01-02]",
    "SLURM_STEP_NODELIST": "gpu[01-02]",
    "SLURM_JOB_NUM_NODES": "2",
    "SLURMD_NODENAME": "gpu02",
    "SLURM_NTASKS": "2",
    "SLURM_STEP_NUM_TASKS": "2",
    "SLURM_PROCID": "1",
    "SLURM_LOCALID": "0",
    "SLURM_NODEID": "1",
    "SLURM_CPUS_ON_NODE": "8",
    "SLURM_JOB_CPUS_PER_NODE": "8(x2)",
    "SLURM_GPUS_ON_NODE": "4",
    "SLURM_JOB_GPUS": "0,1,2,3",
    "SLURM_MEM_PER_NODE": "4096",
    "SLURM_SUBMIT_HOST": "login1",
}


def test_outside_slurm_there_is_no_job() -> None:
    assert slurm_job_id({}) is None
    assert slurm_facts({"PATH": "/usr/bin"}) is None


@pytest.mark.parametrize("bad", ["", "  ", "abc", "12a", "-3", "1.5"])
def test_a_job_id_that_is_not_a_number_is_not_a_slurm_job(bad: str) -> None:
    assert slurm_job_id({"SLURM_JOB_ID": bad, "SLURM_STEP_ID": "0"}) is None
    assert slurm_facts({"SLURM_JOB_ID": bad}) is None


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"SLURM_JOB_ID": "812", "SLURM_STEP_ID": "0"}, "slurm:812.0"),
        ({"SLURM_JOB_ID": "812", "SLURM_STEP_ID": "3"}, "slurm:812.3"),
        ({"SLURM_JOBID": "812", "SLURM_STEPID": "1"}, "slurm:812.1"),  # legacy names
        ({"SLURM_JOB_ID": "812", "ENVIRONMENT": "BATCH"}, "slurm:812.batch"),
        ({"SLURM_JOB_ID": "812"}, "slurm:812.interactive"),  # an salloc shell
        ({"SLURM_JOB_ID": "812", "SLURM_STEP_ID": "4294967291"}, "slurm:812.batch"),
        ({"SLURM_JOB_ID": "812", "SLURM_STEP_ID": "4294967292"}, "slurm:812.extern"),
        ({"SLURM_JOB_ID": "812", "SLURM_STEP_ID": "4294967290"}, "slurm:812.interactive"),
        # A task of an array: SLURM's own id of the task is 703; sacct shows 700_3.
        (
            {
                "SLURM_JOB_ID": "703",
                "SLURM_ARRAY_JOB_ID": "700",
                "SLURM_ARRAY_TASK_ID": "3",
                "SLURM_STEP_ID": "0",
            },
            "slurm:700_3.0",
        ),
        ({"SLURM_JOB_ID": " 0812 ", "SLURM_STEP_ID": "00"}, "slurm:812.0"),
    ],
)
def test_identity_has_the_step_and_the_array_task(env: dict[str, str], expected: str) -> None:
    assert slurm_job_id(env) == expected


def test_two_ranks_of_one_step_share_one_identity_and_other_steps_do_not() -> None:
    rank0 = {**SRUN_RANK1, "SLURM_PROCID": "0", "SLURM_NODEID": "0", "SLURMD_NODENAME": "gpu01"}
    assert slurm_job_id(rank0) == slurm_job_id(SRUN_RANK1) == "slurm:812.0"
    assert slurm_job_id({**SRUN_RANK1, "SLURM_STEP_ID": "1", "SLURM_STEPID": "1"}) == (
        "slurm:812.1"
    )


def test_facts_of_an_srun_rank() -> None:
    facts = slurm_facts(SRUN_RANK1)
    assert facts is not None
    assert facts["job_id"] == "slurm:812.0"
    assert facts["slurm_job_id"] == 812
    assert facts["step"] == "0"
    assert facts["array_job_id"] is None
    assert facts["array_task_id"] is None
    assert facts["job_name"] == "train"
    assert facts["cluster"] == "hpc"
    assert facts["partition"] == "debug"
    assert facts["account"] == "ml"
    assert facts["node_list"] == "gpu[01-02]"
    assert facts["nodes"] == ["gpu01", "gpu02"]
    assert facts["nnodes"] == 2
    assert facts["node"] == "gpu02"
    assert (facts["ntasks"], facts["procid"], facts["localid"], facts["nodeid"]) == (2, 1, 0, 1)
    assert facts["submit_host"] == "login1"
    alloc = facts["allocation"]
    assert alloc["cpus_on_node"] == 8
    assert alloc["cpus_per_node"] == "8(x2)"
    assert alloc["cpus_per_node_list"] == [8, 8]
    assert alloc["gpus_on_node"] == 4
    assert alloc["job_gpus"] == "0,1,2,3"
    assert alloc["mem_per_node_mb"] == 4096
    assert alloc["mem_per_cpu_mb"] is None


def test_a_value_that_does_not_parse_is_kept_as_given_never_guessed() -> None:
    facts = slurm_facts(
        {"SLURM_JOB_ID": "9", "SLURM_NTASKS": "two", "SLURM_JOB_NODELIST": "a[1-x]",
         "SLURM_JOB_CPUS_PER_NODE": "4(x", "SLURM_STEP_ID": "weird step!"}
    )  # fmt: skip
    assert facts is not None
    assert facts["ntasks"] == "two"
    assert facts["node_list"] == "a[1-x]"
    assert facts["nodes"] is None
    assert facts["allocation"]["cpus_per_node"] == "4(x"
    assert facts["allocation"]["cpus_per_node_list"] is None
    assert facts["step"] == "weird_step_"
    assert facts["job_id"] == "slurm:9.weird_step_"


def test_facts_are_plain_json() -> None:
    import json

    facts = slurm_facts(SRUN_RANK1)
    assert json.loads(json.dumps(facts)) == facts


@pytest.mark.parametrize(
    ("hostlist", "hosts"),
    [
        ("node1", ["node1"]),
        ("gpu[01-03,7],cpu1", ["gpu01", "gpu02", "gpu03", "gpu7", "cpu1"]),
        ("n[8-11]", ["n8", "n9", "n10", "n11"]),
        ("rack[1-2]-a", ["rack1-a", "rack2-a"]),
        ("a,b", ["a", "b"]),
        ("a[1-x]", None),
        ("a[3-1]", None),
        ("a,,b", None),
        ("a[1-2", None),
        ("", None),
        ("n[0-99999]", None),  # more than MAX_EXPANDED_HOSTS: kept compressed
    ],
)
def test_hostlist(hostlist: str, hosts: list[str] | None) -> None:
    assert expand_hostlist(hostlist) == hosts


@pytest.mark.parametrize(
    ("value", "counts"),
    [("4", [4]), ("4(x2),2", [4, 4, 2]), ("1,2,3", [1, 2, 3]), ("x", None), ("4(x99999)", None)],
)
def test_cpus_per_node(value: str, counts: list[int] | None) -> None:
    assert expand_cpus_per_node(value) == counts

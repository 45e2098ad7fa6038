"""A heterogeneous SLURM job's identity: every component is one job (the leader's), each
step told apart by component as sacct names it (``slurm:900+1.0`` for sacct's ``900+1.0``).

The environments are what SLURM sets (slurmctld's batch environment sets
``SLURM_HET_JOB_ID`` and ``SLURM_HET_JOB_OFFSET`` for a heterogeneous job; srun gives a
component's tasks that component's ``SLURM_JOB_ID`` and lists every component's id as
``SLURM_JOB_ID_HET_GROUP_<n>``; see ``docs/explanation/jobs.md``). Outside a heterogeneous
job nothing changes: those identities are checked here too.
"""

from __future__ import annotations

import pytest

from wattwise.slurm import parse_job_ref
from wattwise.tracking._job import detect_job
from wattwise.tracking._slurm import het_component, slurm_facts, slurm_job_id

#: Component 1 (its own id 901) of heterogeneous job 900, step 0, as srun starts it.
COMPONENT_1 = {
    "SLURM_JOB_ID": "901", "SLURM_JOBID": "901", "SLURM_STEP_ID": "0",
    "SLURM_HET_JOB_ID": "900", "SLURM_HET_JOB_OFFSET": "1", "SLURM_HET_SIZE": "2",
    "SLURM_JOB_ID_HET_GROUP_0": "900", "SLURM_JOB_ID_HET_GROUP_1": "901",
    "SLURM_PROCID": "0", "SLURM_LOCALID": "0", "SLURM_NTASKS": "1", "SLURM_NODEID": "0",
    "SLURMD_NODENAME": "gpu07",
}  # fmt: skip

#: The batch script of job 900 (it runs in component 0, the leader).
BATCH = {
    "SLURM_JOB_ID": "900", "SLURM_HET_JOB_ID": "900", "SLURM_HET_JOB_OFFSET": "0",
    "SLURM_JOB_ID_HET_GROUP_0": "900", "SLURM_JOB_ID_HET_GROUP_1": "901",
    "ENVIRONMENT": "BATCH",
}  # fmt: skip


def test_a_component_step_is_the_leaders_job_with_its_offset() -> None:
    assert slurm_job_id(COMPONENT_1) == "slurm:900+1.0"
    assert het_component(COMPONENT_1) == (900, 1)


def test_the_batch_script_runs_in_component_zero() -> None:
    assert slurm_job_id(BATCH) == "slurm:900+0.batch"
    leader_step = {**BATCH, "SLURM_STEP_ID": "3"}
    del leader_step["ENVIRONMENT"]
    assert slurm_job_id(leader_step) == "slurm:900+0.3"


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        # Only the offset variable (no per-group ids): trusted when it agrees with the ids.
        ({"SLURM_JOB_ID": "1202", "SLURM_HET_JOB_ID": "1200", "SLURM_HET_JOB_OFFSET": "2",
          "SLURM_STEP_ID": "0"}, "slurm:1200+2.0"),
        # The per-group ids win over a stale offset inherited from the batch script.
        ({"SLURM_JOB_ID": "901", "SLURM_HET_JOB_ID": "900", "SLURM_HET_JOB_OFFSET": "0",
          "SLURM_JOB_ID_HET_GROUP_0": "900", "SLURM_JOB_ID_HET_GROUP_1": "901",
          "SLURM_STEP_ID": "0"}, "slurm:900+1.0"),
        # Component ids need not follow the leader's: the group list says which it is.
        ({"SLURM_JOB_ID": "4711", "SLURM_HET_JOB_ID": "900", "SLURM_JOB_ID_HET_GROUP_0": "900",
          "SLURM_JOB_ID_HET_GROUP_1": "4711", "SLURM_STEP_ID": "2"}, "slurm:900+1.2"),
        # The old names (SLURM 17.11 to 19.05: "pack" jobs).
        ({"SLURM_JOB_ID": "901", "SLURM_PACK_JOB_ID": "900", "SLURM_PACK_JOB_OFFSET": "1",
          "SLURM_STEP_ID": "0"}, "slurm:900+1.0"),
        # The leader alone, no offset given: it is component 0 by definition.
        ({"SLURM_JOB_ID": "900", "SLURM_HET_JOB_ID": "900", "SLURM_STEP_ID": "0"},
         "slurm:900+0.0"),
    ],
)  # fmt: skip
def test_the_component_offset_from_what_slurm_gives(env: dict[str, str], expected: str) -> None:
    assert slurm_job_id(env) == expected


@pytest.mark.parametrize(
    "env",
    [
        # A component's own id and no way to know its offset: never guessed (901 - 900).
        {"SLURM_JOB_ID": "901", "SLURM_HET_JOB_ID": "900", "SLURM_STEP_ID": "0"},
        # An offset that contradicts the ids (a non-leader claiming offset 0, and back).
        {"SLURM_JOB_ID": "901", "SLURM_HET_JOB_ID": "900", "SLURM_HET_JOB_OFFSET": "0",
         "SLURM_STEP_ID": "0"},
        {"SLURM_JOB_ID": "900", "SLURM_HET_JOB_ID": "900", "SLURM_HET_JOB_OFFSET": "1",
         "SLURM_STEP_ID": "0"},
        # A leader id that is not a number.
        {"SLURM_JOB_ID": "901", "SLURM_HET_JOB_ID": "x9", "SLURM_HET_JOB_OFFSET": "1",
         "SLURM_STEP_ID": "0"},
    ],
)  # fmt: skip
def test_an_unknowable_component_keeps_its_own_job_id(env: dict[str, str]) -> None:
    assert het_component(env) is None
    assert slurm_job_id(env) == f"slurm:{env['SLURM_JOB_ID']}.0"


def test_a_heterogeneous_step_of_an_ordinary_job_is_one_step_of_that_job() -> None:
    # srun a : b inside one allocation: every group has the job's own id, so it is no
    # heterogeneous job; sacct's 812.0+0 and 812.0+1 are the ledger's one step 812.0.
    env = {"SLURM_JOB_ID": "812", "SLURM_HET_JOB_ID": "812", "SLURM_HET_JOB_OFFSET": "1",
           "SLURM_JOB_ID_HET_GROUP_0": "812", "SLURM_JOB_ID_HET_GROUP_1": "812",
           "SLURM_STEP_ID": "0", "SLURM_HET_SIZE": "2"}  # fmt: skip
    assert het_component(env) is None
    assert slurm_job_id(env) == "slurm:812.0"
    assert slurm_job_id({"SLURM_JOB_ID": "812", "SLURM_STEP_ID": "0", "SLURM_HET_SIZE": "2"}) == (
        "slurm:812.0"
    )


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"SLURM_JOB_ID": "812", "SLURM_STEP_ID": "0"}, "slurm:812.0"),
        ({"SLURM_JOB_ID": "812", "ENVIRONMENT": "BATCH"}, "slurm:812.batch"),
        ({"SLURM_JOB_ID": "703", "SLURM_ARRAY_JOB_ID": "700", "SLURM_ARRAY_TASK_ID": "3",
          "SLURM_STEP_ID": "0"}, "slurm:700_3.0"),
        ({"SLURM_JOB_ID": "812", "SLURM_STEP_ID": "4294967292"}, "slurm:812.extern"),
    ],
)  # fmt: skip
def test_identities_outside_heterogeneous_jobs_are_unchanged(
    env: dict[str, str], expected: str
) -> None:
    assert slurm_job_id(env) == expected
    assert het_component(env) is None


def test_the_facts_name_the_leader_and_the_offset() -> None:
    facts = slurm_facts(COMPONENT_1)
    assert facts is not None
    assert facts["job_id"] == "slurm:900+1.0"
    assert facts["slurm_job_id"] == 901  # the component's own id stays recorded
    assert (facts["het_job_id"], facts["het_job_offset"]) == (900, 1)
    assert facts["step"] == "0"
    plain = slurm_facts({"SLURM_JOB_ID": "812", "SLURM_STEP_ID": "0"})
    assert plain is not None
    assert (plain["het_job_id"], plain["het_job_offset"]) == (None, None)
    # An offset that cannot be known: the leader's id is still kept, as SLURM gave it.
    unknown = slurm_facts({"SLURM_JOB_ID": "901", "SLURM_HET_JOB_ID": "900"})
    assert unknown is not None
    assert (unknown["het_job_id"], unknown["het_job_offset"]) == (900, None)


def test_every_component_of_the_job_is_one_job_in_the_ledger() -> None:
    component_0 = {**COMPONENT_1, "SLURM_JOB_ID": "900", "SLURM_JOBID": "900",
                   "SLURM_HET_JOB_OFFSET": "0", "SLURMD_NODENAME": "cpu03"}  # fmt: skip
    jobs = [detect_job(env) for env in (component_0, COMPONENT_1)]
    assert [j.id if j else None for j in jobs] == ["slurm:900+0.0", "slurm:900+1.0"]
    assert {j.source for j in jobs if j} == {"slurm"}
    # What `wattwise job reconcile` reads back from those ids: one SLURM job, 900.
    refs = [parse_job_ref(j.id) for j in jobs if j]
    assert refs == [("900+0", "0"), ("900+1", "0")]
    assert {job.split("+")[0] for job, _ in refs} == {"900"}


@pytest.mark.parametrize(
    ("ref", "parsed"),
    [
        ("900+1", ("900+1", None)),
        ("900+1.0", ("900+1", "0")),
        ("slurm:900+0.batch", ("900+0", "batch")),
        ("812.0+1", ("812", "0")),  # sacct's component of a heterogeneous step
    ],
)
def test_heterogeneous_references(ref: str, parsed: tuple[str, str | None]) -> None:
    assert parse_job_ref(ref) == parsed

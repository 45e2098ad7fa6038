"""A real single-node SLURM (munged, slurmdbd on a throwaway MariaDB, slurmctld, slurmd; see
``tests/slurm_support.py``) running an ``sbatch`` script whose ``srun --ntasks 2`` starts two
``wattwise run -- python work.py`` ranks, with a fake RAPL counter advanced by the test.

It must be one job (its id from SLURM) of two ranks, with SLURM's facts recorded, the host's
CPU counter counted once, and ``wattwise job reconcile`` must print SLURM's figure beside the
ledger's (here: SLURM has no energy plugin, so "not measured by SLURM") and store it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from slurm_support import PARTITION, FakeRapl, SlurmCluster, cluster_or_skip
from wattwise.store import RunRecord, get_store

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="SLURM runs on Linux")

WATTWISE = Path(sys.executable).parent / "wattwise"
POWER_W = 55.0

WORK = """
import os, time
start = time.monotonic()
n = 0
while time.monotonic() - start < 2.5:  # CPU busy for a while
    n += 1
print("rank", os.environ["SLURM_PROCID"], "of", os.environ["SLURM_NTASKS"], "done")
"""

SCRIPT = """#!/bin/bash
#SBATCH --job-name=ww-slurm-test
#SBATCH --ntasks=2
#SBATCH --cpus-per-task=1
#SBATCH --mem=1G
#SBATCH --output=job.out
export WATTWISE_RAPL_ROOT={rapl}
srun --ntasks 2 {wattwise} run --no-diff -- {python} work.py
"""


@dataclass
class FinishedJob:
    cluster: SlurmCluster
    job: int
    state: str
    folder: Path
    ledger: Path
    rapl: FakeRapl
    output: str

    def runs(self) -> list[RunRecord]:
        store = get_store(str(self.ledger), readonly=True)
        try:
            return store.list_runs()
        finally:
            store.close()

    def wattwise(
        self, *args: str, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(WATTWISE), "--store", str(self.ledger), *args], capture_output=True,
            text=True, timeout=60, check=False, cwd=self.folder,
            env={**self.cluster.env, **(env or {})},
        )  # fmt: skip


@pytest.fixture(scope="module")
def slurm() -> Iterator[SlurmCluster]:
    with cluster_or_skip() as cluster:
        yield cluster


@pytest.fixture(scope="module")
def finished_job(slurm: SlurmCluster, tmp_path_factory: pytest.TempPathFactory) -> FinishedJob:
    if not WATTWISE.is_file():
        pytest.skip(f"{WATTWISE} is not installed (pip install -e . into this venv)")
    folder = tmp_path_factory.mktemp("slurm-job")
    (folder / "work.py").write_text(WORK)
    ledger = folder / "ledger.db"
    with FakeRapl(folder / "rapl", POWER_W) as rapl:
        script = folder / "job.sh"
        script.write_text(SCRIPT.format(rapl=rapl.root, wattwise=WATTWISE, python=sys.executable))
        env = {k: v for k, v in slurm.env.items()
               if not k.startswith(("WATTWISE_", "TORCHELASTIC_"))}  # fmt: skip
        env.update(
            WATTWISE_STORE=str(ledger), WATTWISE_REGION="FR", WATTWISE_METERS="cpu-rapl",
            WATTWISE_INTERVAL_S="0.2", WATTWISE_FLUSH_S="0.4",
            WATTWISE_JOB_LOCK_DIR=str(folder / "locks"),
            WATTWISE_CEILING_DIRECTORIES=str(folder),
        )  # fmt: skip
        job = slurm.sbatch(script, env=env)
        state = slurm.wait(job, timeout=60)
    out = folder / "job.out"
    output = out.read_text(errors="replace") if out.exists() else "(no job.out)"
    return FinishedJob(slurm, job, state, folder, ledger, rapl, output)


def test_the_batch_job_completes_with_two_ranks_under_wattwise(finished_job: FinishedJob) -> None:
    assert finished_job.state == "COMPLETED", finished_job.output
    assert "rank 0 of 2 done" in finished_job.output
    assert "rank 1 of 2 done" in finished_job.output


def test_one_job_from_slurm_with_two_ranks_and_its_facts(finished_job: FinishedJob) -> None:
    job, node = finished_job.job, finished_job.cluster.node
    runs = finished_job.runs()
    assert len(runs) == 2, (finished_job.output, [r.name for r in runs])
    assert {r.job_id for r in runs} == {f"slurm:{job}.0"}
    records = [r.record["job"] for r in runs]
    assert sorted(rec["rank"] for rec in records) == [0, 1]
    assert sorted(rec["local_rank"] for rec in records) == [0, 1]
    assert {rec["world_size"] for rec in records} == {2}
    assert {rec["source"] for rec in records} == {"slurm"}
    for rec in records:
        facts = rec["slurm"]
        assert facts["job_id"] == f"slurm:{job}.0"
        assert facts["slurm_job_id"] == job
        assert facts["step"] == "0"
        assert facts["job_name"] == "ww-slurm-test"
        assert facts["partition"] == PARTITION
        assert facts["cluster"] == "wwtest"
        assert facts["node_list"] == node
        assert facts["nodes"] == [node]
        assert facts["node"] == node
        assert facts["nnodes"] == 1
        assert facts["ntasks"] == 2
        assert facts["nodeid"] == 0
        assert facts["procid"] == rec["rank"]
        assert facts["localid"] == rec["local_rank"]
        alloc = facts["allocation"]
        # Two tasks of one CPU each; --mem=1G is SLURM's 1024 MB per node.
        assert alloc["cpus_per_task"] == 1
        assert alloc["cpus_on_node"] == 2
        assert alloc["cpus_per_node_list"] == [2]
        assert alloc["mem_per_node_mb"] == 1024


def test_the_hosts_cpu_counter_is_counted_once(finished_job: FinishedJob) -> None:
    runs = finished_job.runs()
    assert len(runs) == 2, finished_job.output
    host = {r.record["job"]["host"] for r in runs}
    assert len(host) == 1
    device = f"cpu:{host.pop()}"
    measurers = [r for r in runs if device in r.record["job"]["measures"]]
    others = [r for r in runs if r not in measurers]
    # One process of the job meters the host's CPU package; the other points at it. (A
    # takeover, when the measurer ends first, makes the other one a measurer too, for the
    # time after: still each moment counted once, which the bound below checks.)
    assert measurers, [r.record["job"] for r in runs]
    for run in others:
        assert run.record["job"]["measured_by"].get(device) in {m.id for m in measurers}
        assert run.energy_j == 0.0
    # Never more than the counter rose while any rank ran (both ranks counting the host
    # would give about twice that), and at least what it rose during the first measurer's
    # life (less its start, before its first reading).
    start = min(r.started_at for r in runs)
    end = max(r.ended_at or r.heartbeat_at for r in runs)
    increase = finished_job.rapl.most_increase_j(start, end)
    first = min(measurers, key=lambda r: r.started_at)
    assert first.ended_at is not None
    first_life = finished_job.rapl.most_increase_j(first.started_at, first.ended_at)
    job_energy = sum(r.energy_j for r in runs)
    assert 0 < job_energy <= increase, (job_energy, increase)
    assert job_energy >= 0.9 * first_life, (job_energy, first_life, increase)


def test_reconcile_prints_both_figures_and_stores_them(finished_job: FinishedJob) -> None:
    if not finished_job.cluster.accounting:
        pytest.skip(
            "slurmdbd or mariadb-server is not installed, so this SLURM has no accounting "
            "and sacct has nothing to reconcile: SKIPPED (install them: apt-get install "
            "slurmdbd mariadb-server; `make test` does it as root). The one-line error "
            "without accounting is tested below."
        )
    job = finished_job.job
    # slurmdbd hears of the steps from the controller a moment after the job ends.
    rows = finished_job.cluster.sacct_rows(job, "JobID,State")
    assert f"{job}.0|COMPLETED" in rows, rows
    done = finished_job.wattwise("job", "reconcile", str(job))
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    out = done.stdout
    assert f"SLURM job {job}" in out
    assert f"step {job}.0" in out
    assert "not measured by SLURM" in out
    assert "sacct covers: whole nodes" in out
    assert "ledger covers: the devices the job's elected measurers metered" in out
    assert f"{job}.batch (batch, COMPLETED)" in out  # the batch step has no wattwise run
    assert "Stored on 2 run(s)" in out

    runs = finished_job.runs()
    ledger_energy = sum(r.energy_j for r in runs)
    for run in runs:
        stored = run.record["sacct"]
        assert stored["sacct_energy_j"] is None  # no energy plugin here: never 0
        assert stored["measured_by_slurm"] is False
        assert stored["difference_j"] is None
        assert stored["ledger_energy_j"] == pytest.approx(ledger_energy)
        assert stored["step"] == f"{job}.0"
        assert set(stored["covers"]) == {"sacct", "ledger"}
        assert stored["energy_plugin"] == "acct_gather_energy/none"
        assert "not measured by SLURM" in stored["note"]
        steps = {s["job_id"]: s for s in stored["steps"]}
        assert {f"{job}", f"{job}.batch", f"{job}.0"} <= set(steps)
        assert steps[f"{job}.0"]["node_list"] == finished_job.cluster.node
        assert steps[f"{job}.0"]["alloc_tres"]["cpu"] == "2"
        assert steps[f"{job}.0"]["state"] == "COMPLETED"
        assert stored["checked_at"].endswith("Z")

    as_json = finished_job.wattwise("job", "reconcile", f"slurm:{job}.0", "--json", "--no-store")
    assert as_json.returncode == 0, as_json.stderr
    data = json.loads(as_json.stdout)
    assert data["job"] == str(job)
    assert data["sacct_energy_j"] is None
    assert data["ledger_energy_j"] == pytest.approx(ledger_energy)
    assert [s["ledger_job_id"] for s in data["steps"]] == [f"slurm:{job}.0"]


def test_reconcile_without_accounting_is_one_line_exit_1(
    finished_job: FinishedJob, tmp_path: Path
) -> None:
    # The same cluster seen through a slurm.conf without accounting: the real sacct refuses.
    conf = tmp_path / "slurm.conf"
    text = finished_job.cluster.conf.read_text()
    lines = [x for x in text.splitlines() if not x.startswith("AccountingStorage")]
    conf.write_text("\n".join([*lines, "AccountingStorageType=accounting_storage/none", ""]))
    done = finished_job.wattwise(
        "job", "reconcile", str(finished_job.job), env={"SLURM_CONF": str(conf)}
    )
    assert done.returncode == 1
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"wattwise: error: sacct -j {finished_job.job} failed (exit 1)")
    assert "accounting" in lines[0]


def test_reconcile_without_sacct_is_one_line_exit_1(finished_job: FinishedJob) -> None:
    done = finished_job.wattwise(
        "job", "reconcile", str(finished_job.job), env={"PATH": str(WATTWISE.parent)}
    )
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        f"wattwise: error: 'sacct' not found on PATH: reconciling with SLURM needs its "
        "accounting client; run this on a node of the cluster, or save the output of "
        f"'sacct -P -n -j {finished_job.job} --format JobID,JobName,NodeList,Elapsed,"
        "ConsumedEnergyRaw,AllocTRES,State' there and pass it with --sacct-file"
    ]


PRINT_FACTS = """
import json, os
from wattwise.tracking._slurm import slurm_facts
print(json.dumps(slurm_facts(os.environ)))
"""

ARRAY_SCRIPT = """#!/bin/bash
#SBATCH --job-name=ww-array
#SBATCH --array=0-1
#SBATCH --ntasks=1
#SBATCH --output=array-%a.out
{python} facts.py > batch-$SLURM_ARRAY_TASK_ID.json
srun {python} facts.py > step-$SLURM_ARRAY_TASK_ID.json
"""


def test_identity_of_array_tasks_and_steps_is_what_sacct_prints(
    slurm: SlurmCluster, tmp_path: Path
) -> None:
    # Reconciliation finds a ledger job's step in sacct's output by this identity.
    (tmp_path / "facts.py").write_text(PRINT_FACTS)
    script = tmp_path / "array.sh"
    script.write_text(ARRAY_SCRIPT.format(python=sys.executable))
    array = slurm.sbatch(script)
    slurm.wait_gone(array, timeout=60)
    facts = {
        f"{kind}-{task}": json.loads((tmp_path / f"{kind}-{task}.json").read_text())
        for kind in ("batch", "step") for task in (0, 1)
    }  # fmt: skip
    for task in (0, 1):
        batch, step = facts[f"batch-{task}"], facts[f"step-{task}"]
        assert batch["job_id"] == f"slurm:{array}_{task}.batch"
        assert step["job_id"] == f"slurm:{array}_{task}.0"
        for each in (batch, step):
            assert (each["array_job_id"], each["array_task_id"]) == (array, task)
            assert each["job_name"] == "ww-array"
            assert each["partition"] == PARTITION
    # Each task is a job of its own for SLURM: the first keeps the array's id.
    own_ids = {facts[f"step-{task}"]["slurm_job_id"] for task in (0, 1)}
    assert len(own_ids) == 2 and array in own_ids
    if not slurm.accounting:
        pytest.skip("no slurmdbd/MariaDB here: the identities were not compared with sacct")
    wanted = {each["job_id"].removeprefix("slurm:") for each in facts.values()}
    deadline = time.monotonic() + 60
    printed = set(slurm.sacct_rows(array, "JobID"))
    while not wanted <= printed and time.monotonic() < deadline:
        time.sleep(1)  # slurmdbd records each task when slurmctld sends it: not at once
        printed = set(slurm.sacct_rows(array, "JobID"))
    for each in facts.values():
        assert each["job_id"].removeprefix("slurm:") in printed, (each["job_id"], printed)

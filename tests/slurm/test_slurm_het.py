"""Heterogeneous SLURM jobs reconciled like any other job: every component in the job's
total, each component's steps beside sacct's lines for them.

The first tests need no SLURM: sacct text and a real SQLite ledger. ``HET_STEP_2205`` is a
line Slurm 22.05.8 printed on the test cluster of ``tests/slurm_support.py`` for a
heterogeneous step of an ordinary job (``srun ... : ...``); ``HET_JOB`` follows the JobIDs
sacct prints for a heterogeneous job (``<leader>+<offset>[.<step>]``, Slurm's
"Heterogeneous Job Support": ``sacct -j 900`` lists every component) with the field formats
of ``tests/slurm/test_slurm_reconcile.py``.

The last test submits a real heterogeneous job to that one-node cluster, with
``wattwise run`` in each component. SLURM (22.05.8 here) does not give two components of
one job (or of one step) the same node, so on one node it cannot run, and the test SKIPS,
quoting SLURM's refusal. With the test cluster's ``SchedulerType=sched/builtin``, sbatch
answers "Requested operation not supported on this system" (the backfill scheduler is
the one that schedules heterogeneous jobs); under ``sched/backfill`` the second component
stays PENDING (Resources) while the first holds the node; a heterogeneous step in one
allocation fails with "Allocation failure of 1 nodes: job size of 1, already allocated 1
nodes to previous components". On a cluster where it runs, the test checks the ledger.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from slurm_support import FakeRapl, SlurmCluster, cluster_or_skip
from wattwise.slurm import SacctError, parse_sacct, reconcile
from wattwise.store import BaseRunStore, RunRecord, RunStatus, get_store

WATTWISE = Path(sys.executable).parent / "wattwise"

#: Slurm 22.05.8, the test cluster: component 0 of step 0 of job 1 (``srun ... : ...``).
HET_STEP_2205 = "1.0+0|bash|vm|00:00:00|0|cpu=2,mem=100M,node=1|RUNNING\n"

#: Heterogeneous job 900 of two components on two nodes, with an energy plugin: the batch
#: script (component 0), a step in each component, and a step across both (step 1).
HET_JOB = """\
900+0|mix|cpu03|00:10:00||billing=4,cpu=4,mem=8G,node=1|COMPLETED
900+0.batch|batch|cpu03|00:10:00|21000|cpu=4,mem=8G,node=1|COMPLETED
900+0.extern|extern|cpu03|00:10:00|150000|billing=4,cpu=4,mem=8G,node=1|COMPLETED
900+0.0|python|cpu03|00:05:00|90000|cpu=4,mem=8G,node=1|COMPLETED
900+0.1|python|cpu03|00:02:00|30000|cpu=4,mem=8G,node=1|COMPLETED
900+1|mix|gpu07|00:10:00||billing=8,cpu=8,gres/gpu=1,mem=32G,node=1|COMPLETED
900+1.extern|extern|gpu07|00:10:00|600000|billing=8,cpu=8,gres/gpu=1,mem=32G,node=1|COMPLETED
900+1.0|python|gpu07|00:08:00|400000|cpu=8,gres/gpu=1,mem=32G,node=1|COMPLETED
900+1.1|python|gpu07|00:02:00|70000|cpu=8,gres/gpu=1,mem=32G,node=1|COMPLETED
"""

#: Ordinary job 812 whose step 0 was ``srun a : b`` (two components on two nodes).
HET_STEP = """\
812|pair|n[1-2]|00:03:00||billing=4,cpu=4,node=2|COMPLETED
812.batch|batch|n1|00:03:00|9000|cpu=2,node=1|COMPLETED
812.0+0|a|n1|00:02:00|40000|cpu=2,node=1|COMPLETED
812.0+1|b|n2|00:02:00|55000|cpu=2,node=1|COMPLETED
"""


def _write_run(store: BaseRunStore, job_id: str, energy_j: float) -> RunRecord:
    """A finished run of ``job_id`` with ``energy_j``, through the public store API."""
    run_id = uuid.uuid4().hex
    now = time.time()
    store.insert_run(RunRecord(
        id=run_id, name="train", kind="command", status=RunStatus.RUNNING, started_at=now,
        heartbeat_at=now, host="n1", pid=999_999, region="FR",
        record={"job": {"id": job_id, "source": "slurm", "host": "n1"}},
    ))  # fmt: skip
    store.flush_run(
        run_id,
        {"status": RunStatus.FINISHED, "ended_at": now + 10, "duration_s": 10.0,
         "energy_j": energy_j, "energy_band_j": energy_j * 0.1, "machine_energy_j": energy_j},
    )  # fmt: skip
    return store.get_run(run_id)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[BaseRunStore]:
    opened = get_store(str(tmp_path / "ledger.db"))
    yield opened
    opened.close()


def test_parse_heterogeneous_lines() -> None:
    (real,) = parse_sacct(HET_STEP_2205)
    assert (real.job_id, real.job, real.step, real.state) == ("1.0+0", "1", "0+0", "RUNNING")
    rows = parse_sacct(HET_JOB)
    assert [(r.job, r.step) for r in rows[:2]] == [("900+0", None), ("900+0", "batch")]
    assert (rows[7].job, rows[7].step, rows[7].energy_j) == ("900+1", "0", 400_000.0)


def test_the_leaders_id_reconciles_every_component(store: BaseRunStore) -> None:
    a = _write_run(store, "slurm:900+0.0", 80_000.0)
    b = _write_run(store, "slurm:900+1.0", 350_000.0)
    c = _write_run(store, "slurm:900+0.1", 25_000.0)  # step 1 spans both components:
    d = _write_run(store, "slurm:900+1.1", 60_000.0)  # one ledger job per component, as sacct
    _write_run(store, "slurm:9000.0", 1.0)  # another job whose id starts alike
    _write_run(store, "slurm:901.0", 1.0)  # not a component's name: left out
    result = reconcile(store, "900", sacct_output=HET_JOB, plugin="acct_gather_energy/ipmi")
    assert result.job == "900"
    assert [s.step for s in result.steps] == ["900+0.0", "900+0.1", "900+1.0", "900+1.1"]
    assert [s.sacct_energy_j for s in result.steps] == [90_000.0, 30_000.0, 400_000.0, 70_000.0]
    assert [s.sacct_lines for s in result.steps] == [
        ("900+0.0",), ("900+0.1",), ("900+1.0",), ("900+1.1",),
    ]  # fmt: skip
    # The job's total covers both components.
    assert result.ledger_energy_j == 80_000.0 + 350_000.0 + 25_000.0 + 60_000.0
    assert result.sacct_energy_j == 90_000.0 + 30_000.0 + 400_000.0 + 70_000.0
    assert result.difference_j == result.sacct_energy_j - result.ledger_energy_j
    assert len(result.sacct_steps) == 9  # every line of both components
    assert store.get_run(b.id).record["sacct"]["step"] == "900+1.0"
    assert store.get_run(b.id).record["sacct"]["difference_j"] == 50_000.0
    assert {store.get_run(r.id).record["sacct"]["job"] for r in (a, c, d)} == {"900"}


def test_one_component_or_one_of_its_steps(store: BaseRunStore) -> None:
    _write_run(store, "slurm:900+0.0", 80_000.0)
    _write_run(store, "slurm:900+1.0", 350_000.0)
    _write_run(store, "slurm:900+1.1", 60_000.0)
    component = reconcile(store, "900+1", sacct_output=HET_JOB, annotate=False)
    assert component.job == "900+1"
    assert [s.step for s in component.steps] == ["900+1.0", "900+1.1"]
    assert {r.job for r in component.sacct_steps} == {"900+1"}
    one = reconcile(store, "slurm:900+1.0", sacct_output=HET_JOB, annotate=False)
    assert [(s.step, s.ledger_energy_j) for s in one.steps] == [("900+1.0", 350_000.0)]


def test_a_heterogeneous_step_adds_its_component_lines(store: BaseRunStore) -> None:
    run = _write_run(store, "slurm:812.0", 90_000.0)  # srun a : b is one ledger job
    result = reconcile(store, "812", sacct_output=HET_STEP, plugin="acct_gather_energy/ipmi")
    (step,) = result.steps
    assert step.step == "812.0"
    assert step.sacct_lines == ("812.0+0", "812.0+1")
    assert step.sacct_energy_j == 40_000.0 + 55_000.0
    assert step.difference_j == 5_000.0
    assert store.get_run(run.id).record["sacct"]["sacct_energy_j"] == 95_000.0
    # sacct's name for one component is that same step.
    same = reconcile(store, "812.0+1", sacct_output=HET_STEP, plugin="acct_gather_energy/ipmi",
                     annotate=False)  # fmt: skip
    assert [s.sacct_energy_j for s in same.steps] == [95_000.0]


def test_a_component_line_without_energy_leaves_the_step_unmeasured(store: BaseRunStore) -> None:
    _write_run(store, "slurm:812.0", 90_000.0)
    text = HET_STEP.replace("812.0+1|b|n2|00:02:00|55000|", "812.0+1|b|n2|00:02:00||")
    (step,) = reconcile(store, "812", sacct_output=text, annotate=False).steps
    assert step.sacct_energy_j is None and step.difference_j is None
    assert step.note is not None and step.note.startswith("812.0+1: not measured by SLURM")


def test_a_component_still_running_is_not_reconciled(store: BaseRunStore) -> None:
    _write_run(store, "slurm:812.0", 90_000.0)
    running = HET_STEP.replace("|40000|cpu=2,node=1|COMPLETED", "|40000|cpu=2,node=1|RUNNING")
    assert running != HET_STEP
    with pytest.raises(SacctError, match=r"SLURM step 812.0 \(slurm:812.0\) has not ended"):
        reconcile(store, "812", sacct_output=running)


def _wattwise(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "wattwise", *args], capture_output=True, text=True,
        timeout=60, check=False, cwd=cwd, env=env,
    )  # fmt: skip


def test_cli_prints_every_component_and_the_total(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.db"
    store = get_store(str(ledger))
    for job_id, joules in (("slurm:900+0.0", 80_000.0), ("slurm:900+1.0", 350_000.0)):
        _write_run(store, job_id, joules)
    store.close()
    saved = tmp_path / "sacct.txt"
    saved.write_text(HET_JOB)
    done = _wattwise("--store", str(ledger), "job", "reconcile", "900", "--sacct-file",
                     str(saved), "--no-store")  # fmt: skip
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "step 900+0.0  (1 run(s), slurm:900+0.0)" in out
    assert "step 900+1.0  (1 run(s), slurm:900+1.0)" in out
    assert re.search(r"Component 900\+0: 1 step\(s\), ledger 80(\.0)? kJ; sacct 90(\.0)? kJ", out)
    assert re.search(r"Component 900\+1: 1 step\(s\), ledger 350 kJ; sacct 400 kJ", out), out
    assert re.search(r"Total: ledger 430 kJ, sacct 490 kJ", out), out
    # sacct's other lines (the batch script, unmeasured steps) are listed, not compared.
    assert "900+0.batch (batch, COMPLETED)" in out and "900+1.1 (python, COMPLETED)" in out
    data = json.loads(
        _wattwise("--store", str(ledger), "job", "reconcile", "900", "--sacct-file", str(saved),
                  "--no-store", "--json").stdout
    )  # fmt: skip
    assert [s["step"] for s in data["steps"]] == ["900+0.0", "900+1.0"]
    assert data["ledger_energy_j"] == 430_000.0


# -- a real heterogeneous job --------------------------------------------------------------

WORK = """
import os, time
start = time.monotonic()
while time.monotonic() - start < 1.0:
    pass
print("component", os.environ.get("SLURM_HET_JOB_OFFSET"), "job", os.environ["SLURM_JOB_ID"],
      "done", flush=True)
"""

SCRIPT = """#!/bin/bash
#SBATCH --job-name=ww-het-test
#SBATCH --ntasks=1
#SBATCH --cpus-per-task=1
#SBATCH --mem=200M
#SBATCH --output=job.out
#SBATCH hetjob
#SBATCH --ntasks=1
#SBATCH --cpus-per-task=1
#SBATCH --mem=200M
export WATTWISE_RAPL_ROOT={rapl}
srun --het-group=0 {wattwise} run --no-diff -- {python} work.py &
srun --het-group=1 {wattwise} run --no-diff -- {python} work.py &
wait
"""

#: How long a submitted heterogeneous job may stay PENDING before the test concludes that
#: this cluster cannot place it (one node: components never share one).
PENDING_LIMIT_S = 30.0


@pytest.fixture(scope="module")
def slurm() -> Iterator[SlurmCluster]:
    with cluster_or_skip() as cluster:
        yield cluster


def _pending_reason(cluster: SlurmCluster, job: int) -> str | None:
    """The reason SLURM gives for a pending job, None once it is not pending."""
    done = cluster.client("scontrol", "-o", "show", "job", str(job), check=False)
    state = re.search(r"\bJobState=(\S+)", done.stdout)
    if state is None or state.group(1) != "PENDING":
        return None
    reason = re.search(r"\bReason=(\S+)", done.stdout)
    return reason.group(1) if reason else "unknown"


@pytest.mark.skipif(sys.platform != "linux", reason="SLURM runs on Linux")
def test_a_real_heterogeneous_job_is_one_job_in_the_ledger(
    slurm: SlurmCluster, tmp_path: Path
) -> None:
    if not WATTWISE.is_file():
        pytest.skip(f"{WATTWISE} is not installed (pip install -e . into this venv)")
    (tmp_path / "work.py").write_text(WORK)
    ledger = tmp_path / "ledger.db"
    with FakeRapl(tmp_path / "rapl", 40.0) as rapl:
        script = tmp_path / "het.sh"
        script.write_text(SCRIPT.format(rapl=rapl.root, wattwise=WATTWISE, python=sys.executable))
        env = {k: v for k, v in slurm.env.items()
               if not k.startswith(("WATTWISE_", "TORCHELASTIC_"))}  # fmt: skip
        env.update(
            WATTWISE_STORE=str(ledger), WATTWISE_REGION="FR", WATTWISE_METERS="cpu-rapl",
            WATTWISE_INTERVAL_S="0.2", WATTWISE_FLUSH_S="0.4",
            WATTWISE_JOB_LOCK_DIR=str(tmp_path / "locks"),
            WATTWISE_CEILING_DIRECTORIES=str(tmp_path),
        )  # fmt: skip
        try:
            job = slurm.sbatch(script, env=env)
        except RuntimeError as refused:
            pytest.skip(
                f"this SLURM cannot run a heterogeneous job: {refused} (heterogeneous jobs "
                "need SchedulerType=sched/backfill, and SLURM gives each component its own "
                "node: the test cluster has sched/builtin and one node): the end-to-end "
                "heterogeneous "
                "test is SKIPPED; the identity and reconciliation are unit-tested above and "
                "in tests/jobs/test_het_identity.py"
            )
        deadline = time.monotonic() + PENDING_LIMIT_S
        while (reason := _pending_reason(slurm, job)) is not None:
            if time.monotonic() > deadline:
                slurm.client("scancel", str(job), check=False)  # ours: the id sbatch gave
                pytest.skip(
                    f"this SLURM accepted heterogeneous job {job} but left it PENDING "
                    f"({reason}) for {PENDING_LIMIT_S:.0f} s: SLURM gives each component its "
                    "own node and this cluster has one: the end-to-end "
                    "heterogeneous test is SKIPPED"
                )
            time.sleep(0.2)
        state = slurm.wait(job, timeout=120)
    out = tmp_path / "job.out"
    output = out.read_text(errors="replace") if out.exists() else "(no job.out)"
    assert state == "COMPLETED", output
    reader = get_store(str(ledger), readonly=True)
    try:
        runs = reader.list_runs()
    finally:
        reader.close()
    assert {r.job_id for r in runs} == {f"slurm:{job}+0.0", f"slurm:{job}+1.0"}, output
    offsets = sorted(r.record["job"]["slurm"]["het_job_offset"] for r in runs)
    assert offsets == [0, 1]
    assert {r.record["job"]["slurm"]["het_job_id"] for r in runs} == {job}
    if slurm.accounting:
        slurm.sacct_rows(job, "JobID,State")
        done = _wattwise("--store", str(ledger), "job", "reconcile", str(job), "--no-store",
                         cwd=tmp_path, env=slurm.env)  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert f"step {job}+0.0" in done.stdout and f"step {job}+1.0" in done.stdout

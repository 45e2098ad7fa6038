"""Parsing sacct's output and reconciling it with a real SQLite ledger (no SLURM needed).

Output shapes: ``REAL_2205`` is what Slurm 22.05.8 (Debian bookworm) printed for a 2-task
``srun`` under ``sbatch`` on the test cluster of ``tests/slurm_support.py`` (no energy
plugin: an empty field on the job line, 0 on the steps). Lines with energy follow the
field formats of sacct(1), Slurm 22.05 ("ConsumedEnergyRaw: Total energy consumed by all
tasks in a job, in joules"; "Elapsed time fields are presented as
[days-]hours:minutes:seconds[.microseconds]"; https://slurm.schedmd.com/sacct.html).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from wattwise.exceptions import InvalidParameterError, RunNotFoundError
from wattwise.slurm import (
    COVERS,
    SacctError,
    parse_job_ref,
    parse_sacct,
    reconcile,
    run_sacct,
)
from wattwise.store import BaseRunStore, RunRecord, RunStatus, get_store

REAL_2205 = """\
1|wwt|vm|00:00:01||billing=2,cpu=2,node=1|COMPLETED
1.batch|batch|vm|00:00:01|0|cpu=2,mem=0,node=1|COMPLETED
1.0|bash|vm|00:00:00|0|cpu=2,mem=0,node=1|COMPLETED
"""

# Job 812 on two GPU nodes with an energy plugin: the batch script, then two srun steps.
MEASURED = """\
812|train|gpu[01-02]|01:02:03||billing=16,cpu=16,gres/gpu=8,mem=64G,node=2|COMPLETED
812.batch|batch|gpu01|01:02:03|210345|cpu=8,gres/gpu=4,mem=32G,node=1|COMPLETED
812.extern|extern|gpu[01-02]|01:02:03|2480000|billing=16,cpu=16,gres/gpu=8,mem=64G,node=2|COMPLETED
812.0|python|gpu[01-02]|00:40:00|1500000|cpu=16,gres/gpu=8,mem=64G,node=2|COMPLETED
812.1|python|gpu[01-02]|00:21:50|600000|cpu=16,gres/gpu=8,mem=64G,node=2|FAILED
"""


def _write_run(
    store: BaseRunStore,
    job_id: str,
    energy_j: float,
    *,
    parent: str | None = None,
    slurm: dict[str, object] | None = None,
    running: bool = False,
) -> RunRecord:
    """A finished run of ``job_id`` with ``energy_j``, through the public store API."""
    run_id = uuid.uuid4().hex
    now = time.time()
    store.insert_run(RunRecord(
        id=run_id, name="train", kind="command", status=RunStatus.RUNNING, started_at=now,
        heartbeat_at=now, host="gpu01", pid=999_999, parent_id=parent, region="FR",
        record={"job": {"id": job_id, "source": "slurm", "host": "gpu01",
                        **({"slurm": slurm} if slurm else {})}},
    ))  # fmt: skip
    if running:  # a live tracker's state: heartbeats, no end
        store.flush_run(run_id, {"heartbeat_at": time.time(), "energy_j": energy_j})
        return store.get_run(run_id)
    store.flush_run(
        run_id,
        {"status": RunStatus.FINISHED, "ended_at": now + 10, "duration_s": 10.0,
         "energy_j": energy_j, "energy_band_j": energy_j * 0.1, "machine_energy_j": energy_j},
    )  # fmt: skip
    return store.get_run(run_id)


@pytest.fixture
def store(tmp_path: Path) -> BaseRunStore:
    return get_store(str(tmp_path / "ledger.db"))


def test_parse_real_output_of_slurm_22_05() -> None:
    job, batch, step = parse_sacct(REAL_2205)
    assert (job.job_id, job.job, job.step, job.name) == ("1", "1", None, "wwt")
    assert job.energy_j is None and job.energy_raw == ""
    assert job.alloc_tres == {"billing": "2", "cpu": "2", "node": "1"}
    assert (batch.job_id, batch.step, batch.energy_j) == ("1.batch", "batch", 0.0)
    assert (step.job_id, step.step, step.node_list, step.state) == ("1.0", "0", "vm", "COMPLETED")
    assert (job.elapsed_s, step.elapsed_s) == (1, 0)


def test_parse_energy_arrays_long_times_and_odd_names() -> None:
    text = (
        "700_3|a|b|c|n1|1-02:03:04|12345|cpu=4,node=1|COMPLETED\n"  # a job name with pipes
        "700_3.0|python|n1|59:59.5|18446744073709551614|cpu=4,node=1|CANCELLED by 0|\n"
        "700_[4-9]|sweep|None assigned|00:00:00||cpu=4|PENDING\n"
    )
    first, step, pending = parse_sacct(text)
    assert (first.job, first.name, first.node_list) == ("700_3", "a|b|c", "n1")
    assert first.elapsed_s == ((1 * 24 + 2) * 60 + 3) * 60 + 4
    assert first.energy_j == 12345.0
    # SLURM's NO_VAL64 is no value; sacct -p's trailing delimiter is dropped.
    assert (step.job, step.step, step.energy_j, step.state) == (
        "700_3",
        "0",
        None,
        "CANCELLED by 0",
    )
    assert step.elapsed_s == 59 * 60 + 59
    assert (pending.job, pending.step, pending.energy_j) == ("700_[4-9]", None, None)


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("812|train|gpu01|00:01:00\n", "has 4 fields, not 7"),
        (
            "JobID|JobName|NodeList|Elapsed|ConsumedEnergyRaw|AllocTRES|State\n",
            "'JobID', not a job id",
        ),
    ],
)
def test_malformed_sacct_output_says_what_to_give(text: str, needle: str) -> None:
    with pytest.raises(SacctError, match="give the output of 'sacct -P -n --format") as err:
        parse_sacct(text)
    assert needle in str(err.value)


@pytest.mark.parametrize(
    ("ref", "parsed"),
    [
        ("812", ("812", None)),
        ("812.0", ("812", "0")),
        ("slurm:812.0", ("812", "0")),
        ("slurm:812.batch", ("812", "batch")),
        ("700_3", ("700_3", None)),
        (" 700_3.1 ", ("700_3", "1")),
    ],
)
def test_job_references(ref: str, parsed: tuple[str, str | None]) -> None:
    assert parse_job_ref(ref) == parsed


@pytest.mark.parametrize("ref", ["", "abc", "812.", "slurm:", "812.0.1", "torchrun:x@h:1", "-1"])
def test_a_reference_that_is_not_a_slurm_job_is_a_usage_error(ref: str) -> None:
    with pytest.raises(InvalidParameterError, match="is not a SLURM job: give its id"):
        parse_job_ref(ref)


def test_reconcile_measured_steps_and_store_them_per_step(store: BaseRunStore) -> None:
    a = _write_run(store, "slurm:812.0", 700_000.0)
    b = _write_run(store, "slurm:812.0", 600_000.0)
    nested = _write_run(store, "slurm:812.0", 50_000.0, parent=a.id)  # inside a's energy
    c = _write_run(store, "slurm:812.1", 450_000.0)
    _write_run(store, "slurm:8120.0", 1.0)  # another job whose id starts alike
    result = reconcile(store, "812", sacct_output=MEASURED, plugin="acct_gather_energy/ipmi",
                       now=1_700_000_000.0)  # fmt: skip
    assert result.job == "812"
    assert [s.ledger_job_id for s in result.steps] == ["slurm:812.0", "slurm:812.1"]
    step0, step1 = result.steps
    assert set(step0.run_ids) == {a.id, b.id, nested.id}
    assert step0.ledger_energy_j == 1_300_000.0  # the nested run is not counted twice
    assert step0.sacct_energy_j == 1_500_000.0
    assert step0.difference_j == 200_000.0
    assert (step1.ledger_energy_j, step1.sacct_energy_j, step1.difference_j) == (
        450_000.0, 600_000.0, 150_000.0,
    )  # fmt: skip
    assert (result.ledger_energy_j, result.sacct_energy_j, result.difference_j) == (
        1_750_000.0, 2_100_000.0, 350_000.0,
    )  # fmt: skip
    assert result.note is None
    assert [s.job_id for s in result.sacct_steps] == [
        "812",
        "812.batch",
        "812.extern",
        "812.0",
        "812.1",
    ]

    for run in (a, b, nested):
        stored = store.get_run(run.id).record["sacct"]
        assert stored["step"] == "812.0"
        assert (stored["sacct_energy_j"], stored["ledger_energy_j"], stored["difference_j"]) == (
            1_500_000.0, 1_300_000.0, 200_000.0,
        )  # fmt: skip
        assert stored["measured_by_slurm"] is True
        assert stored["covers"] == COVERS
        assert stored["energy_plugin"] == "acct_gather_energy/ipmi"
        assert stored["checked_at"] == "2023-11-14T22:13:20Z"
        assert len(stored["steps"]) == 5
    assert store.get_run(c.id).record["sacct"]["step"] == "812.1"
    # A run of another job is left alone.
    assert all("sacct" not in r.record for r in store.list_runs(job_id="slurm:8120.0"))


def test_one_step_only(store: BaseRunStore) -> None:
    _write_run(store, "slurm:812.0", 1.0)
    c = _write_run(store, "slurm:812.1", 450_000.0)
    result = reconcile(
        store, "slurm:812.1", sacct_output=MEASURED, plugin="acct_gather_energy/rapl"
    )
    assert [s.step for s in result.steps] == ["812.1"]
    assert result.steps[0].run_ids == (c.id,)
    assert result.sacct_energy_j == 600_000.0


def test_a_ledger_job_named_by_the_user_inside_slurm(store: BaseRunStore) -> None:
    # WATTWISE_JOB_ID=my-train under srun: the job has the user's name, its runs SLURM's facts.
    run = _write_run(store, "my-train", 1_000_000.0, slurm={"job_id": "slurm:812.0", "step": "0"})
    result = reconcile(store, "my-train", sacct_output=MEASURED, plugin="acct_gather_energy/rapl")
    (step,) = result.steps
    assert (step.ledger_job_id, step.step, step.run_ids) == ("my-train", "812.0", (run.id,))
    assert (step.sacct_energy_j, step.difference_j) == (1_500_000.0, 500_000.0)
    assert store.get_run(run.id).record["sacct"]["step"] == "812.0"
    # A ledger job without SLURM facts is no SLURM job.
    _write_run(store, "plain-job", 1.0)
    with pytest.raises(InvalidParameterError, match="'plain-job' is not a SLURM job"):
        reconcile(store, "plain-job", sacct_output=MEASURED)


def test_an_empty_field_is_not_measured_by_slurm_never_zero(store: BaseRunStore) -> None:
    run = _write_run(store, "slurm:9.0", 321.0)
    text = "9|job|n1|00:00:10||cpu=1,node=1|COMPLETED\n9.0|py|n1|00:00:09||cpu=1|COMPLETED\n"
    result = reconcile(store, "9", sacct_output=text)
    (step,) = result.steps
    assert step.sacct_energy_j is None and step.difference_j is None
    assert step.note is not None and step.note.startswith("not measured by SLURM")
    assert result.sacct_energy_j is None and result.difference_j is None
    assert result.ledger_energy_j == 321.0
    stored = store.get_run(run.id).record["sacct"]
    assert stored["sacct_energy_j"] is None and stored["measured_by_slurm"] is False


@pytest.mark.parametrize(
    ("plugin", "measured"),
    [(None, False), ("acct_gather_energy/none", False), ("(null)", False),
     ("acct_gather_energy/rapl", True)],
)  # fmt: skip
def test_zero_joules_is_a_measurement_only_with_an_energy_plugin(
    store: BaseRunStore, plugin: str | None, measured: bool
) -> None:
    _write_run(store, "slurm:1.0", 10.0)
    result = reconcile(store, "1", sacct_output=REAL_2205, plugin=plugin)
    (step,) = result.steps
    assert (step.sacct_energy_j == 0.0) is measured
    assert (step.sacct_energy_j is None) is not measured
    assert (step.difference_j == -10.0) is measured


def test_one_unmeasured_step_leaves_the_total_unmeasured(store: BaseRunStore) -> None:
    _write_run(store, "slurm:5.0", 10.0)
    _write_run(store, "slurm:5.1", 20.0)
    text = "5.0|a|n1|00:00:10|100|cpu=1|COMPLETED\n5.1|b|n1|00:00:10||cpu=1|COMPLETED\n"
    result = reconcile(store, "5", sacct_output=text, plugin="acct_gather_energy/rapl")
    assert [s.sacct_energy_j for s in result.steps] == [100.0, None]
    assert result.sacct_energy_j is None and result.difference_j is None
    assert result.ledger_energy_j == 30.0


def test_a_step_sacct_does_not_list(store: BaseRunStore) -> None:
    _write_run(store, "slurm:812.7", 10.0)
    result = reconcile(store, "812", sacct_output=MEASURED, plugin="acct_gather_energy/ipmi")
    assert result.steps[0].note == "sacct has no line for this step"
    assert result.sacct_energy_j is None


def test_no_run_of_the_job_in_the_ledger(store: BaseRunStore) -> None:
    _write_run(store, "slurm:8120.0", 1.0)
    with pytest.raises(RunNotFoundError, match=r"No run of SLURM job 812 \(slurm:812\.\*\)"):
        reconcile(store, "812", sacct_output=MEASURED)


def test_sacct_knows_nothing_of_the_job(store: BaseRunStore) -> None:
    _write_run(store, "slurm:44.0", 10.0)
    with pytest.raises(SacctError, match="sacct printed nothing for SLURM job 44"):
        reconcile(store, "44", sacct_output=MEASURED)


def test_nothing_is_stored_without_annotate(store: BaseRunStore) -> None:
    run = _write_run(store, "slurm:812.0", 10.0)
    reconcile(store, "812", sacct_output=MEASURED, annotate=False)
    assert "sacct" not in store.get_run(run.id).record


# -- the command, with sacct's output saved in a file ----------------------------------------


def _wattwise(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "wattwise", *args], capture_output=True, text=True,
        input=stdin, timeout=60, check=False,
    )  # fmt: skip


def test_cli_reconcile_from_a_saved_file(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.db"
    store = get_store(str(ledger))
    run = _write_run(store, "slurm:812.0", 1_300_000.0)
    store.close()
    saved = tmp_path / "sacct.txt"
    saved.write_text(MEASURED)
    done = _wattwise("--store", str(ledger), "job", "reconcile", "812", "--sacct-file", str(saved))
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "step 812.0  (1 run(s), slurm:812.0): ledger 1.30 MJ" in out.replace(
        "1.3 MJ", "1.30 MJ"
    )
    assert "difference (sacct - ledger) +" in out
    assert "not in the ledger: 812 (train, COMPLETED), 812.batch (batch, COMPLETED)" in out
    assert "Stored on 1 run(s) as annotation 'sacct' (see: wattwise show slurm:812.0)." in out
    store = get_store(str(ledger), readonly=True)
    assert store.get_run(run.id).record["sacct"]["sacct_energy_j"] == 1_500_000.0
    store.close()

    piped = _wattwise("--store", str(ledger), "job", "reconcile", "812.0", "--sacct-file", "-",
                      "--json", "--no-store", stdin=MEASURED)  # fmt: skip
    assert piped.returncode == 0, piped.stderr
    data = json.loads(piped.stdout)
    assert data["difference_j"] == 200_000.0
    assert data["covers"] == COVERS


@pytest.mark.parametrize(
    ("args", "code", "start"),
    [
        (["job", "reconcile", "abc"], 2, "wattwise: error: 'abc' is not a SLURM job"),
        (["job", "reconcile", "812", "--sacct-file", "/nonexistent/sacct.txt"], 1,
         "wattwise: error: /nonexistent/sacct.txt: No such file or directory"),
        (["job", "reconcile", "812", "--sacct-file", "BAD"], 1,
         "wattwise: error: sacct line 1 has 2 fields, not 7"),
        (["job", "reconcile", "99", "--sacct-file", "GOOD"], 1,
         "wattwise: error: No run of SLURM job 99 (slurm:99.*) in the ledger"),
        (["job"], 2, "wattwise: error: the following arguments are required: ACTION"),
    ],
)  # fmt: skip
def test_cli_errors_are_one_line(tmp_path: Path, args: list[str], code: int, start: str) -> None:
    ledger = tmp_path / "ledger.db"
    store = get_store(str(ledger))
    _write_run(store, "slurm:812.0", 1.0)
    store.close()
    (tmp_path / "BAD").write_text("812|x\n")
    (tmp_path / "GOOD").write_text(MEASURED)
    args = [str(tmp_path / a) if a in {"BAD", "GOOD"} else a for a in args]
    done = _wattwise("--store", str(ledger), *args)
    assert done.returncode == code
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(start), lines[0]


def test_a_slurm_conf_that_is_not_a_file_is_said_at_once() -> None:
    # sacct itself would retry for a minute. The program (here Python, which would fail
    # otherwise on sacct's options) is never started.
    with pytest.raises(SacctError, match=r"SLURM_CONF=/nonexistent/slurm.conf is not a file"):
        run_sacct("812", sacct=sys.executable, env={"SLURM_CONF": "/nonexistent/slurm.conf"})


def test_a_step_that_has_not_ended_is_not_reconciled(store: BaseRunStore) -> None:
    run = _write_run(store, "slurm:812.0", 10.0)
    running = MEASURED.replace(
        "812.0|python|gpu[01-02]|00:40:00|1500000|cpu=16,gres/gpu=8,mem=64G,node=2|COMPLETED",
        "812.0|python|gpu01|00:01:00||cpu=1|RUNNING",
    )
    with pytest.raises(SacctError, match=r"SLURM step 812.0 \(slurm:812.0\) has not ended "
                       r"\(sacct says RUNNING\)"):  # fmt: skip
        reconcile(store, "812", sacct_output=running)
    assert "sacct" not in store.get_run(run.id).record


def test_a_rank_still_running_in_the_ledger_is_not_reconciled(store: BaseRunStore) -> None:
    _write_run(store, "slurm:812.1", 10.0, running=True)
    with pytest.raises(SacctError, match=r"1 of its run\(s\) are still running in the ledger"):
        reconcile(store, "812.1", sacct_output=MEASURED)

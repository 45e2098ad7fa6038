"""Jobs on the command line: ``show JOB``, ``runs`` folding a job into one line, and the
project's footprint and report counting a job's energy once (issue 11)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from cli_support import HOSTILE, RAW, assert_one_line_error, call, insert_run

from job_records import (
    Planned,
    co2e_g,
    node_ranks,
    nodes_job,
    ranks_job,
    wrapped_job,
    write_job,
    write_run,
)
from wattwise.store import RunStatus, open_store

JOB = "torchrun:job-a@127.0.0.1:29500"
T0 = time.time() - 3600.0
RANKS_J = 32_590.0  # every device of ranks_job() once
WRAPPED_J = 33_280.0  # the two node runs of wrapped_job()


def _ledger_with(plans: list[Planned], job_id: str = JOB, start: float = T0) -> list[Planned]:
    store = open_store()
    try:
        write_job(store, plans, job_id, start)
    finally:
        store.close()
    return plans


def test_show_job_prints_hosts_ranks_devices_and_the_total_once() -> None:
    plans = _ledger_with(ranks_job())
    res = call("show", JOB)
    assert res.code == 0 and res.err == "", res.err
    out = res.out
    assert out.startswith(f"Job {JOB}  (torchrun)  [finished]")
    assert "4 rank(s) on 2 host(s), 4 run(s), world size 4" in out
    assert "energy  32.6 kJ" in out
    for line in ("node-a  2     0,1", "node-b  2     2,3"):
        assert line in out, out
    assert f"cpu:node-b   node-b  {plans[3].id[:8]}" in out
    data = json.loads(call("show", JOB, "--json").out)
    assert data["job_id"] == JOB and data["status"] == "finished"
    assert data["energy_j"] == pytest.approx(RANKS_J)
    assert data["energy_band_j"] == pytest.approx(RANKS_J * 0.1)
    assert data["co2e_g"] == pytest.approx(co2e_g(RANKS_J))
    assert [h["host"] for h in data["hosts"]] == ["node-a", "node-b"]
    assert [r["rank"] for r in data["ranks"]] == [0, 1, 2, 3]
    assert len(data["devices"]) == 8 and data["warnings"] == []
    by_prefix = json.loads(call("show", "torchrun:job", "--json").out)
    assert by_prefix["job_id"] == JOB


def test_show_job_of_node_runs_with_nested_ranks() -> None:
    _ledger_with(wrapped_job())
    data = json.loads(call("show", "--job", JOB, "--json").out)
    assert data["energy_j"] == pytest.approx(WRAPPED_J)
    assert data["rank_count"] == 4 and data["runs"] == 6
    assert [r["role"] for r in data["ranks"]] == ["rank"] * 4 + ["node"] * 2
    text = call("show", JOB).out
    assert "  node     " in text and "300 J (in parent)" in text and "see note" in text


def test_show_job_of_node_runs_whose_ranks_have_no_runs() -> None:
    wa, wb = nodes_job()
    store = open_store()
    try:
        write_run(store, wa, job_id=JOB, started_at=T0, job_extra=node_ranks(wa, 0, (0.5, 0.5)))
        write_run(store, wb, job_id=JOB, started_at=T0, job_extra=node_ranks(wb, 2, (0.5, 0.5)))
    finally:
        store.close()
    text = call("show", JOB).out
    assert "4 rank(s) on 2 host(s), 2 run(s)" in text
    assert f"9.35 kJ (share of {wa.id[:8]})" in text
    listed = call("runs", "--ranks").out
    assert "job: 4 rank(s) on 2 host(s)" in listed and "rank 3 on node-b" in listed
    assert "node run on node-a" in listed


def test_a_run_keeps_precedence_over_a_job_prefix_and_a_whole_job_id_over_a_run_prefix() -> None:
    run_id = "abcd1234" + "0" * 24
    store = open_store()
    try:
        write_run(store, Planned("h", None, None, {"cpu": 10.0}, [], id=run_id), job_id=None,
                  started_at=T0, name="lone")  # fmt: skip
        write_job(store, ranks_job(), "abcd-sweep", T0, source="user")
        write_job(store, ranks_job(), "abcd1234", T0, source="user")
    finally:
        store.close()
    run = call("show", "abcd1")  # a run prefix and a job prefix: the run, and a note
    assert run.code == 0 and run.out.startswith(f"Run {run_id}")
    assert run.err_lines == [
        "wattwise: note: 'abcd1' also names job abcd1234; show it with: wattwise show --job "
        "abcd1234"]  # fmt: skip
    several = call("show", "abcd")  # and two job prefixes
    assert several.out.startswith(f"Run {run_id}") and "several job ids" in several.err
    assert call("show", "abcd-sw").out.startswith("Job abcd-sweep")  # only a job matches
    whole_job = call("show", "abcd1234")  # a whole job id beats a run id prefix
    assert whole_job.out.startswith("Job abcd1234")
    assert f"also starts run {run_id}" in whole_job.err
    assert call("show", run_id).out.startswith(f"Run {run_id}")  # a whole run id wins all
    forced = call("show", "--job", "abcd-")
    assert forced.out.startswith("Job abcd-sweep") and forced.err == ""
    assert "precedence" in call("show", "--help").out


def test_show_errors_for_jobs_are_one_line() -> None:
    _ledger_with(ranks_job(), "slurm:4711.0")
    _ledger_with(ranks_job(), "slurm:4712.0")
    assert_one_line_error(call("show", "--job", "nojob"), 1, "No job 'nojob'", "wattwise runs")
    assert_one_line_error(call("show", "slurm:47"), 1, "Job prefix 'slurm:47' is ambiguous")
    assert_one_line_error(call("show", "zzzz"), 1, "No run 'zzzz'")


def test_show_run_prints_its_place_in_the_job_and_its_notes() -> None:
    plans = _ledger_with(ranks_job())
    store = open_store()
    try:
        store.annotate_run(plans[1].id, "notes", "merged from the spool", append=True)
    finally:
        store.close()
    out = call("show", plans[1].id[:8]).out
    assert f"job  {JOB} (torchrun): rank 1 (local 1) of 4 on node-a" in out
    assert "measures gpu:GPU-a1" in out
    assert f"cpu:node-a by run {plans[0].id[:8]}" in out
    assert "note: merged from the spool" in out


def test_runs_folds_a_job_into_one_line_and_ranks_unfolds_it() -> None:
    before = insert_run("before")
    _ledger_with(ranks_job(), start=time.time() - 30)
    res = call("runs")
    assert res.code == 0, res.err
    lines = res.out.splitlines()
    assert len(lines) == 3, res.out  # header, the job, the run
    assert lines[1].startswith(JOB) and "job: 4 rank(s) on 2 host(s)" in lines[1]
    assert "finished" in lines[1] and "32.6 kJ" in lines[1]
    assert lines[2].startswith(before[:8])
    unfolded = call("runs", "--ranks").out.splitlines()
    assert len(unfolded) == 7
    assert [line.split()[2:4] for line in unfolded[2:6]] == [
        ["0", "on"], ["1", "on"], ["2", "on"], ["3", "on"]]  # fmt: skip
    assert "rank 3 on node-b" in unfolded[5]
    data = json.loads(call("runs", "--json").out)
    assert [e.get("kind") for e in data] == ["job", "python"]
    assert data[0]["id"] == JOB and data[0]["energy_j"] == pytest.approx(RANKS_J)
    assert data[0]["name"] == "job: 4 rank(s) on 2 host(s)" and data[0]["region"] == "FR"
    assert set(data[1]) - {"kind", "components", "exit_code", "machine_energy_j", "user",
                           "host", "role", "parent_id", "study_id", "tags", "params"} <= set(
        data[0])  # a job's entry has a run's figures under the same names
    assert "ranks" not in data[0] and len(data[0]["run_ids"]) == 4
    assert data[1]["id"] == before
    ranked = json.loads(call("runs", "--json", "--ranks").out)
    assert [r["rank"] for r in ranked[0]["ranks"]] == [0, 1, 2, 3]
    assert "--ranks" in call("runs", "--help").out


def test_runs_pages_count_a_job_as_one_line_and_filter_by_the_jobs_status() -> None:
    for i in range(21):
        insert_run(f"r{i}")
    plans = ranks_job()
    plans[2].status = RunStatus.FAILED
    _ledger_with(plans)
    page = call("runs")
    assert page.out.splitlines()[-1] == (
        "2 more line(s) (a job is one); use --limit N, --offset 20 or --all.")  # fmt: skip
    rest = call("runs", "--offset", "20").out.splitlines()
    assert len(rest) == 3 and rest[2].startswith(JOB)
    failed = call("runs", "--status", "failed").out.splitlines()
    assert len(failed) == 2 and failed[1].startswith(JOB) and "failed" in failed[1]
    assert "No runs yet" in call("runs", "--status", "running").out
    assert len(json.loads(call("runs", "--all", "--json").out)) == 22


def test_user_text_in_a_job_id_is_shown_not_interpreted() -> None:
    job_id = "job" + HOSTILE
    _ledger_with(ranks_job(), job_id)
    for argv in (["runs"], ["runs", "--ranks"], ["show", "--job", "job\x1b"]):
        res = call(*argv)
        assert res.code == 0, res.err
        for raw in RAW:
            assert raw not in res.out, (argv, raw)
    assert json.loads(call("runs", "--json").out)[0]["id"] == job_id


@pytest.mark.parametrize(
    ("build", "energy_j"), [(ranks_job, RANKS_J), (wrapped_job, WRAPPED_J), (nodes_job, WRAPPED_J)]
)
def test_footprint_and_the_project_report_count_a_job_once(
    build: object, energy_j: float, tmp_path: object
) -> None:
    plans = _ledger_with(build())  # type: ignore[operator]
    extra = insert_run("alone", energy_j=1000.0)
    fp = json.loads(call("footprint", "--json").out)
    assert fp["total"]["energy_j"] == pytest.approx(energy_j + 1000.0)
    assert fp["by_status"]["finished"]["energy_j"] == pytest.approx(energy_j + 1000.0)
    report = call("report", "--project", "--format", "json", "-o", "-")
    assert report.code == 0, report.err
    headline = json.loads(report.out)["headline"]
    assert headline["energy_j"] == pytest.approx(energy_j + 1000.0)
    assert headline["co2e_g"] == pytest.approx(co2e_g(energy_j) + co2e_g(1000.0))
    job = json.loads(call("show", "--job", JOB, "--json").out)
    assert job["energy_j"] == pytest.approx(energy_j)
    assert {extra, *(p.id for p in plans)} >= set(job["run_ids"])


def test_show_job_prints_slurm_facts_and_the_sacct_reconciliation(tmp_path: Path) -> None:
    facts = {"job_id": "812", "step": "0", "partition": "gpu", "nodelist": "node-[a-b]",
             "allocation": {"cpus": 8, "gpus": 4}}  # fmt: skip
    store = open_store()
    try:
        write_job(store, ranks_job(), "slurm:812.0", T0, source="slurm",
                  job_extra={"slurm": facts})  # fmt: skip
    finally:
        store.close()
    saved = tmp_path / "sacct.txt"  # sacct -P -n -j 812 --format JobID,...,State
    saved.write_text(
        "812|train|node-[a-b]|00:01:02||billing=8,cpu=8,node=2|COMPLETED\n"
        "812.0|python|node-[a-b]|00:01:01|40000|cpu=8,node=2|COMPLETED\n"
    )
    done = call("job", "reconcile", "812", "--sacct-file", str(saved))
    assert done.code == 0, done.err
    text = call("show", "slurm:812").out
    assert "SLURM: allocation cpus=8 gpus=4, job_id 812, nodelist node-[a-b], partition gpu, " \
        "step 0" in text
    assert "SLURM 40.0 kJ, ledger 32.6 kJ, difference (sacct - ledger) +7.41 kJ" in text
    assert "  sacct covers: " in text and "  ledger covers: " in text
    data = json.loads(call("show", "slurm:812.0", "--json").out)
    assert data["sacct"]["sacct_energy_j"] == 40_000.0
    assert data["sacct"]["ledger_energy_j"] == pytest.approx(data["energy_j"])
    assert data["slurm"] == facts

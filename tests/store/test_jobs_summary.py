"""A job read from the ledger (``wattwise.store.jobs``): totals counted once, per host, per
rank, per device; status, prefixes, disagreements between records; the folded listing."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator

import pytest

from job_records import (
    BAND,
    Planned,
    co2e_g,
    node_ranks,
    nodes_job,
    ranks_job,
    wrapped_job,
    write_job,
    write_run,
)
from wattwise.exceptions import RunNotFoundError
from wattwise.store import BaseRunStore, RunRecord, RunStatus, get_store, open_store
from wattwise.store.jobs import (
    JobSummary,
    job_status,
    job_summary,
    runs_page,
)

T0 = 1_760_000_000.0
JOB = "torchrun:job-a@127.0.0.1:29500"


@pytest.fixture(params=["sqlite", "memory", "postgresql"])
def store(request: pytest.FixtureRequest) -> Iterator[BaseRunStore]:
    if request.param == "sqlite":
        opened = open_store()
    elif request.param == "memory":
        opened = get_store(f"memory://jobs-{uuid.uuid4().hex}")
    else:
        opened = get_store(request.getfixturevalue("pg_url"))
    try:
        yield opened
    finally:
        opened.close()


def test_a_job_of_ranks_sums_each_device_once(store: BaseRunStore) -> None:
    plans = ranks_job()
    write_job(store, plans, JOB, T0)
    job = job_summary(store, JOB)
    # Every device once: node-a cpu 1200 + dram 150 + gpus 9000 + 8000; node-b 1100 + 140
    # + 7000 + 6000.
    assert job.energy_j == pytest.approx(32_590.0)
    assert job.energy_band_j == pytest.approx(32_590.0 * BAND)
    assert job.co2e_g == pytest.approx(co2e_g(32_590.0))
    assert (job.job_id, job.source, job.status, job.runs) == (JOB, "torchrun", "finished", 4)
    assert job.rank_count == 4 and job.world_size == 4
    assert [(h.host, h.runs, h.ranks) for h in job.hosts] == [
        ("node-a", 2, (0, 1)), ("node-b", 2, (2, 3))]  # fmt: skip
    assert [h.energy_j for h in job.hosts] == pytest.approx([18_350.0, 14_240.0])
    assert [(r.rank, r.local_rank, r.host, r.run_id) for r in job.ranks] == [
        (p.rank, p.local_rank, p.host, p.id) for p in plans]  # fmt: skip
    assert job.ranks[3].measures == ("cpu:node-b", "dram:node-b", "gpu:GPU-b1")
    devices = {d.key: d for d in job.devices}
    assert {k: d.energy_j for k, d in devices.items()} == {
        "cpu:node-a": 1200.0, "dram:node-a": 150.0, "gpu:GPU-a0": 9000.0,
        "gpu:GPU-a1": 8000.0, "cpu:node-b": 1100.0, "dram:node-b": 140.0,
        "gpu:GPU-b0": 7000.0, "gpu:GPU-b1": 6000.0,
    }  # fmt: skip
    assert devices["cpu:node-b"].measured_by == (plans[3].id,)
    assert devices["cpu:node-b"].host == "node-b" and devices["gpu:GPU-a1"].host == "node-a"
    assert devices["gpu:GPU-a0"].component == "gpu"
    assert devices["dram:node-a"].energy_band_j == pytest.approx(15.0)
    assert job.warnings == ()
    assert job.ended_at == pytest.approx(T0 + 1.5 + 60.0)
    assert job.duration_s == pytest.approx(61.5)


def test_a_job_of_node_wrappers_counts_the_wrappers_not_the_nested_ranks(
    store: BaseRunStore,
) -> None:
    plans = wrapped_job()
    write_job(store, plans, JOB, T0)
    job = job_summary(store, JOB)
    # The wrappers' energy (1500 + 200 + 17000 and 1400 + 180 + 13000); the nested ranks'
    # 300 J each is inside their wrapper's.
    assert job.energy_j == pytest.approx(33_280.0)
    assert job.runs == 6 and job.rank_count == 4
    assert [(r.rank, r.counted) for r in job.ranks] == [
        (0, False), (1, False), (2, False), (3, False), (None, True), (None, True)]  # fmt: skip
    assert [(h.host, h.runs, h.ranks, h.energy_j) for h in job.hosts] == [
        ("node-a", 3, (0, 1), 18_700.0), ("node-b", 3, (2, 3), 14_580.0)]  # fmt: skip
    devices = {d.key: d for d in job.devices}
    assert devices["cpu:node-a"].energy_j == 1500.0
    assert devices["cpu:node-a"].measured_by == (plans[0].id,)
    # One wrapper's gpu figure covers both of its GPUs: no per-GPU figure is made up.
    assert devices["gpu:GPU-a0"].energy_j is None
    assert "inside run" in devices["gpu:GPU-a0"].note
    assert job.warnings == ()


def test_job_status_from_its_runs() -> None:
    assert job_status(["finished", "finished"]) == "finished"
    assert job_status(["finished", "failed", "crashed"]) == "failed"
    assert job_status(["finished", "crashed"]) == "crashed"
    assert job_status(["failed", "running", "crashed"]) == "running"


def test_a_failed_or_live_rank_sets_the_job_status(store: BaseRunStore) -> None:
    failed = ranks_job()
    failed[2].status = RunStatus.FAILED
    write_job(store, failed, "user:failing", T0, source="user")
    assert job_summary(store, "user:failing").status == "failed"
    live = ranks_job()
    live[1].status = RunStatus.RUNNING  # heartbeat now, on another host: alive
    write_job(store, live, "user:live", T0, source="user")
    job = job_summary(store, "user:live")
    assert job.status == "running" and job.ended_at is None
    assert job.duration_s >= time.time() - T0 - 5


def test_prefixes_ambiguity_and_missing_jobs(store: BaseRunStore) -> None:
    write_job(store, ranks_job(), "slurm:4711.0", T0, source="slurm")
    write_job(store, ranks_job(), "slurm:4712.0", T0, source="slurm")
    assert job_summary(store, "slurm:4711").job_id == "slurm:4711.0"
    with pytest.raises(RunNotFoundError, match=r"ambiguous \(slurm:4711.0, slurm:4712.0\)"):
        job_summary(store, "slurm:47")
    with pytest.raises(RunNotFoundError) as missing:
        job_summary(store, "slurm:9999")
    assert "No job 'slurm:9999'" in str(missing.value)
    assert "\n" not in str(missing.value)
    with pytest.raises(RunNotFoundError):
        job_summary(store, "slu")  # under 4 characters: only a whole id


def test_records_that_disagree_are_warned_about(store: BaseRunStore) -> None:
    a = Planned("node-a", 0, 0, {"cpu": 100.0}, ["cpu:node-a"])
    b = Planned("node-a", 1, 1, {"cpu": 90.0}, ["cpu:node-a"])  # a second measurer at once
    c = Planned("node-a", 2, 2, {}, [], measured_by={"cpu:node-a": "f" * 32})  # unknown
    write_job(store, [a, b, c], "user:split", T0, source="user")
    job = job_summary(store, "user:split")
    text = " ".join(job.warnings)
    assert f"measured by runs {a.id[:8]} and {b.id[:8]} at the same time" in text
    assert "ffffffff, which is not in this job's records" in text
    assert job.energy_j == pytest.approx(190.0)  # the records' sum, with the warning


@pytest.mark.parametrize("recorded", ["takeovers", "pointer"])
def test_a_takeover_is_not_a_disagreement(store: BaseRunStore, recorded: str) -> None:
    first = Planned("node-a", 0, 0, {"cpu": 100.0}, ["cpu:node-a"], status=RunStatus.FAILED)
    second = Planned("node-a", 1, 1, {"cpu": 40.0}, ["cpu:node-a"])
    extra: dict[str, object] = {}
    if recorded == "takeovers":  # as the tracker records it: when it took over, from whom
        extra = {"takeovers": [{"device": "cpu:node-a", "from_run": first.id, "at": T0 + 31}]}
    else:  # a record that still names the old measurer
        second.measured_by = {"cpu:node-a": first.id}
    write_run(store, first, job_id="user:handover", started_at=T0, duration_s=30.0)
    write_run(store, second, job_id="user:handover", started_at=T0 + 1, duration_s=60.0,
              job_extra=extra)  # fmt: skip
    job = job_summary(store, "user:handover")
    assert job.warnings == ()
    device = job.devices[0]
    assert device.measured_by == (first.id, second.id)
    assert device.energy_j == pytest.approx(140.0) and job.energy_j == pytest.approx(140.0)
    assert job.status == "failed"


def test_a_takeover_that_overlaps_the_old_measurer_is_warned_about(store: BaseRunStore) -> None:
    first = Planned("node-a", 0, 0, {"cpu": 100.0}, ["cpu:node-a"])
    second = Planned("node-a", 1, 1, {"cpu": 40.0}, ["cpu:node-a"])
    took = {"takeovers": [{"device": "cpu:node-a", "from_run": first.id, "at": T0 + 10}]}
    write_run(store, first, job_id="user:early", started_at=T0, duration_s=30.0)
    write_run(store, second, job_id="user:early", started_at=T0 + 1, duration_s=60.0,
              job_extra=took)  # fmt: skip
    (warning,) = job_summary(store, "user:early").warnings
    assert "at the same time (20 s)" in warning


def test_ranks_seen_by_their_nodes_run_are_listed_inside_its_energy(store: BaseRunStore) -> None:
    wa, wb = nodes_job()
    write_run(store, wa, job_id=JOB, started_at=T0, job_extra=node_ranks(wa, 0, (0.75, 0.25)))
    write_run(store, wb, job_id=JOB, started_at=T0, job_extra=node_ranks(wb, 2, (0.5, 0.5)))
    job = job_summary(store, JOB)
    assert job.energy_j == pytest.approx(33_280.0) and job.rank_count == 4 and job.runs == 2
    shares = [r for r in job.ranks if r.role == "share"]
    assert [(r.rank, r.host, r.run_id, r.counted) for r in shares] == [
        (0, "node-a", wa.id, False), (1, "node-a", wa.id, False),
        (2, "node-b", wb.id, False), (3, "node-b", wb.id, False)]  # fmt: skip
    assert [r.energy_j for r in shares] == pytest.approx(
        [0.75 * 18_700, 0.25 * 18_700, 0.5 * 14_580, 0.5 * 14_580])  # fmt: skip
    assert [(h.runs, h.ranks) for h in job.hosts] == [(1, (0, 1)), (1, (2, 3))]
    assert [r.role for r in job.ranks if r.rank is None] == ["node", "node"]


def test_a_run_that_measured_standalone_is_warned_about(store: BaseRunStore) -> None:
    plans = ranks_job()
    plans[2].measured_by = {}  # node-b's CPU measurer is the standalone run below
    write_job(store, plans[:3], "user:odd", T0, source="user")
    lone = Planned("node-b", 3, 1, {"cpu": 500.0}, [])
    write_run(store, lone, job_id="user:odd", started_at=T0, source="user",
              job_extra={"standalone": True})  # fmt: skip
    (warning,) = job_summary(store, "user:odd").warnings
    assert f"Run(s) {lone.id[:8]} could not hold the job's election" in warning


def test_slurm_facts_and_the_sacct_reconciliation_are_in_the_summary(
    store: BaseRunStore,
) -> None:
    facts = {"job_id": "slurm:812.0", "partition": "gpu", "nodelist": "node-[a-b]"}
    plans = ranks_job()
    runs = [
        write_run(store, plan, job_id="slurm:812.0", started_at=T0, source="slurm",
                  job_extra={"slurm": facts})
        for plan in plans
    ]  # fmt: skip
    sacct = {"sacct_energy_j": 40_000.0, "ledger_energy_j": 32_590.0,
             "difference_j": 7410.0, "covers": {"sacct": "whole nodes"}}  # fmt: skip
    store.annotate_run(runs[1].id, "sacct", sacct)
    job = job_summary(store, "slurm:812.0")
    assert job.slurm == facts and job.sacct == sacct
    data = json.loads(json.dumps(job.to_dict()))
    assert {"job_id", "hosts", "ranks", "energy_j", "energy_band_j", "co2e_g",
            "devices"} <= set(data)  # fmt: skip
    assert data["sacct"]["sacct_energy_j"] == 40_000.0
    assert data["hosts"][0]["ranks"] == [0, 1]
    assert data["ranks"][0]["started_at"].endswith("Z")


def _ids(entries: list[RunRecord | JobSummary]) -> list[str]:
    return [e.job_id if isinstance(e, JobSummary) else e.id for e in entries]


def test_the_listing_folds_each_job_into_one_entry(store: BaseRunStore) -> None:
    old = write_run(store, Planned("h", None, None, {"cpu": 5.0}, []), job_id=None,
                    started_at=T0 - 100)  # fmt: skip
    write_job(store, ranks_job(), JOB, T0)
    failed = ranks_job()
    failed[0].status = RunStatus.FAILED
    write_job(store, failed, "user:second", T0 + 50, source="user")
    new = write_run(store, Planned("h", None, None, {"cpu": 7.0}, []), job_id=None,
                    started_at=T0 + 100, name="newest")  # fmt: skip
    whole = runs_page(store)
    assert _ids(whole.entries) == [new.id, "user:second", JOB, old.id]
    assert whole.total is None and whole.has_jobs
    first = runs_page(store, limit=2)
    assert _ids(first.entries) == [new.id, "user:second"] and first.total == 4
    second = runs_page(store, limit=2, offset=2, chunk=3)
    assert _ids(second.entries) == [JOB, old.id] and second.total == 4
    job = second.entries[0]
    assert isinstance(job, JobSummary) and job.energy_j == pytest.approx(32_590.0)
    failing = runs_page(store, status="failed")
    assert _ids(failing.entries) == ["user:second"]
    finished = runs_page(store, status="finished", limit=5)
    assert _ids(finished.entries) == [new.id, JOB, old.id]
    assert runs_page(store, limit=1, offset=1, status="finished").total == 3
    assert runs_page(store, offset=4).entries == []

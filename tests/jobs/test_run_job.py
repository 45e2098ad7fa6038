"""A Run in a job: the record's job, the host column, nested runs, tuning runs left out,
and a failed election that never stops the run."""

from __future__ import annotations

from pathlib import Path

import pytest

import wattwise
from wattwise.store import get_store
from wattwise.testing import FakeMeter
from wattwise.tracking import Run


@pytest.fixture
def in_job(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("WATTWISE_JOB_ID", "job-r")
    monkeypatch.setenv("WATTWISE_HOST_ID", "host-r")
    monkeypatch.setenv("WATTWISE_JOB_LOCK_DIR", str(tmp_path / "locks"))
    return tmp_path


def _meter() -> FakeMeter:
    return FakeMeter({"cpu:0": 30.0, "dram:0": 3.0})


def test_a_run_in_a_job_records_it_and_its_host(in_job: Path) -> None:
    store = get_store("memory://run-job")
    with (
        wattwise.track("outer", meters=[_meter()], store=store, interval_s=0.05) as outer,
        wattwise.track("inner", meters=[_meter()], store=store, interval_s=0.05) as inner,
    ):
        outer_job = outer.record["job"]
        inner_job = inner.record["job"]
    assert outer_job["id"] == "job-r" and outer_job["source"] == "user"
    assert outer_job["measures"] == ["cpu:host-r", "dram:host-r"]
    assert inner_job["measures"] == []  # the same process measures already: nested loses
    assert inner_job["measured_by"] == {"cpu:host-r": outer.id, "dram:host-r": outer.id}
    assert inner.result.energy_j == 0.0
    assert outer.result.energy_j == pytest.approx(outer.result.machine_energy_j)
    saved = store.get_run(outer.id)
    assert saved.host == "host-r" and saved.job_id == "job-r"
    assert store.get_run(inner.id).parent_id == outer.id


def test_tuning_runs_keep_their_own_attribution(in_job: Path) -> None:
    store = get_store("memory://run-job-tuning")
    for kwargs in ({"kind": "trial", "study_id": "s" * 32}, {"kind": "study"}):
        run = Run("t", meters=[_meter()], store=store, **kwargs)  # type: ignore[arg-type]
        run.start()
        assert "job" not in run.record
        run.finish()


def test_a_failed_election_warns_once_and_measures_standalone(
    in_job: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = in_job / "file"
    blocker.write_text("")
    monkeypatch.setenv("WATTWISE_JOB_LOCK_DIR", str(blocker / "locks"))
    said: list[str] = []
    with wattwise.track("r", meters=[_meter()], store="memory://run-job-failed",
                        on_warning=said.append) as run:  # fmt: skip
        pass
    assert run.result.status == "finished"
    assert run.record["job"]["standalone"] is True
    assert sum("job election failed" in w for w in said) == 1
